package repair_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/thin/repair"
	"github.com/thinmeta/thinmeta/transaction"
)

// Salvage a pool with a corrupted leaf into a new file, and read the
// report: the leaf's mappings come back from the older copy that the
// copy-on-write left on the device, checked against the newest data space
// map.
func Example() {
	dir, err := os.MkdirTemp("", "repair-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	damaged, repaired := filepath.Join(dir, "damaged.img"), filepath.Join(dir, "repaired.img")

	// A pool of known content, then one leaf's checksum corrupted.
	spec, err := gen.ParseSpec("thins=2 mappings=600 snapshots=1 rewrite=0.2 commit-every=100")
	if err != nil {
		panic(err)
	}
	rec, err := gen.GenerateFile(damaged, spec, 7)
	if err != nil {
		panic(err)
	}
	f, err := os.OpenFile(damaged, os.O_RDWR, 0)
	if err != nil {
		panic(err)
	}
	st, _ := f.Stat()
	if _, err := gen.Damage(transaction.FileDevice{File: f}, st.Size(), rec, gen.Injection{Kind: gen.NodeChecksum}); err != nil {
		panic(err)
	}
	f.Close()

	rep, err := repair.RepairFile(context.Background(), damaged, repaired, repair.Options{}, repair.WriteOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(rep)
	for _, d := range rep.Devices {
		for _, r := range d.Damaged {
			fmt.Printf("device %d: node %d damaged, %d mappings recovered from older copies\n", d.ID, r.Block, r.Recovered)
		}
	}
	// Output:
	// 3 devices, 1674 mappings kept, 123 from older copies, 3 dropped, 1 damaged ranges, 0 devices lost
	// device 3: node 167 damaged, 123 mappings recovered from older copies
}
