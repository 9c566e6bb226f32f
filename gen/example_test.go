package gen_test

import (
	"fmt"
	"os"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/memdev"
)

// A thin of six blocks in runs, a snapshot of it, a rewrite of part of
// the snapshot: what the pool holds, as thin_dump prints it.
func ExampleGenerate() {
	s, err := gen.ParseSpec("thins=1 mappings=6 run-length=3 sparsity=0.5 snapshots=1 rewrite=0.34 target=snapshot")
	if err != nil {
		panic(err)
	}
	p, err := gen.NewPlan(s, 1)
	if err != nil {
		panic(err)
	}
	dev := memdev.New(p.MetadataBytes())
	rec, err := p.Build(dev, dev.Size())
	if err != nil {
		panic(err)
	}
	for _, e := range rec.Events {
		if e.Kind != gen.Commit && e.Kind != gen.SetTransaction {
			fmt.Println(e)
		}
	}
	st, err := rec.Final()
	if err != nil {
		panic(err)
	}
	st.WriteXML(os.Stdout)
	// Output:
	// create 1
	// map 1 [1, 2) -> 0 time 0
	// map 1 [7, 9) -> 1 time 0
	// map 1 [10, 13) -> 3 time 0
	// snap 2 of 1 time 1
	// map 2 [10, 13) -> 6 time 1
	// <superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="16">
	//   <device dev_id="1" mapped_blocks="6" transaction="0" creation_time="0" snap_time="1">
	//     <single_mapping origin_block="1" data_block="0" time="0"/>
	//     <range_mapping origin_begin="7" data_begin="1" length="2" time="0"/>
	//     <range_mapping origin_begin="10" data_begin="3" length="3" time="0"/>
	//   </device>
	//   <device dev_id="2" mapped_blocks="6" transaction="1" creation_time="1" snap_time="1">
	//     <single_mapping origin_block="1" data_block="0" time="0"/>
	//     <range_mapping origin_begin="7" data_begin="1" length="2" time="0"/>
	//     <range_mapping origin_begin="10" data_begin="6" length="3" time="1"/>
	//   </device>
	// </superblock>
}

// Damaging a generated pool: the report names the block and says what
// thin_check 0.9.0 and thinmeta's check make of it.
func ExampleDamage() {
	s := gen.DefaultSpec()
	s.Mappings = gen.Range{Min: 5000, Max: 5000}
	s.Snapshots = 2
	s.Shape = gen.Fan
	s.Target = gen.Snapshot
	s.Rewrite = 0.001
	p, err := gen.NewPlan(s, 1)
	if err != nil {
		panic(err)
	}
	dev := memdev.New(p.MetadataBytes())
	rec, err := p.Build(dev, dev.Size())
	if err != nil {
		panic(err)
	}
	rep, err := gen.Damage(dev, dev.Size(), rec, gen.Injection{Kind: gen.MetadataRefCount})
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.Description)
	fmt.Println("thin_check:", rep.ThinCheck)
	for _, f := range rep.Findings {
		fmt.Println("finding:", f)
	}
	// Output:
	// count of block 23 in the metadata space map changed from 2 to 1 (in its bitmap)
	// thin_check: fatal
	// finding: metadata space map: reference count too low (block 23)
}
