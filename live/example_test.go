package live_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/thinmeta/thinmeta/dm"
	"github.com/thinmeta/thinmeta/live"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/dump"
)

// A thin-pool's status line, as the kernel prints it, parsed.
func ExampleParsePoolStatus() {
	s, err := live.ParsePoolStatus("5 130/2048 300/8192 94 rw discard_passdown queue_if_no_space - 512 ")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.TransactionID, s.Mode, s.FreeDataBlocks(), "free data blocks, metadata snapshot at", s.HeldRoot)
	// Output: 5 rw 7892 free data blocks, metadata snapshot at 94
}

// A pool on two block devices, a thin, a snapshot of it while it is in
// use, its metadata read while it runs, and growth when it fills up. Needs
// root and the dm-thin-pool target, so it is not run here; the guest tests
// run the same calls on the real kernel.
func ExampleCreate() {
	ctl, err := dm.Open()
	if err != nil {
		log.Fatal(err)
	}
	p, err := live.Create(ctl, "pool0", live.CreateOptions{
		MetadataDevice: "/dev/sdb1", DataDevice: "/dev/sdb2",
		Format: true, BlockSize: 128, LowWater: 1024,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.CreateThin(1); err != nil {
		log.Fatal(err)
	}
	t, err := p.ActivateThin("thin1", 1, 10<<30/512) // 10 GiB
	if err != nil {
		log.Fatal(err)
	}
	node, _ := t.Path()
	fmt.Println("thin 1 is", node)
	if err := p.Snapshot(2, 1, nil); err != nil { // thin1 may be mounted and busy
		log.Fatal(err)
	}
	err = p.Read(nil, func(snap *thin.Pool) error {
		return dump.Dump(context.Background(), os.Stdout, snap, dump.Options{SkipMappings: true})
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.WaitLowWater(context.Background()); err != nil {
		log.Fatal(err)
	}
	// ... grow /dev/sdb2, then:
	if err := p.GrowData(p.DataBlocks() * 2); err != nil {
		log.Fatal(err)
	}
}
