package blob_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/thin"
)

// metadataFile returns a new, empty 8 MiB metadata file.
func metadataFile() string {
	dir, err := os.MkdirTemp("", "blob-example")
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "meta.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Truncate(path, 8<<20); err != nil {
		log.Fatal(err)
	}
	return path
}

// name returns the printable start of a blob.
func name(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }

// A volume manager keeps each volume's name in its thin's blob: creating
// the thin and naming it is one commit, and the pool alone says which
// thin is which.
func Example() {
	path := metadataFile()
	defer os.RemoveAll(filepath.Dir(path))

	w, err := blob.Create(path, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1 << 20, BlobSize: 256, IndexBytes: 64})
	if err != nil {
		log.Fatal(err)
	}
	root, err := w.NewThin([]byte("vm-root"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.NewThin([]byte("vm-home")); err != nil {
		log.Fatal(err)
	}
	if _, err := w.NewSnapshot(root, []byte("vm-root@monday")); err != nil {
		log.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	// Deleted ids are never handed out again.
	if err := w.Delete(root); err != nil {
		log.Fatal(err)
	}
	id, err := w.NewThin([]byte("vm-root"))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("new vm-root:", id)
	w.Close()

	p, err := blob.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	fmt.Println("thins:", p.Count())
	for t, err := range p.Thins() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s (created at time %d)\n", t.ID, name(t.Blob), t.CreationTime)
	}
	for t, err := range p.Find([]byte("vm-home")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("vm-home is thin", t.ID)
	}
	// Output:
	// new vm-root: 3
	// thins: 3
	// 1 vm-home (created at time 0)
	// 2 vm-root@monday (created at time 1)
	// 3 vm-root (created at time 1)
	// vm-home is thin 1
}

// Reconcile compares what a manager believes with what the pool holds.
func ExamplePool_Reconcile() {
	path := metadataFile()
	defer os.RemoveAll(filepath.Dir(path))
	w, err := blob.Create(path, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000, BlobSize: 32})
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := w.NewThin([]byte(n)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	p, err := w.Committed()
	if err != nil {
		log.Fatal(err)
	}
	// The manager lost thin 2, thinks thin 1 is "B", and remembers a thin
	// 7 the pool never had.
	r, err := p.Reconcile([]blob.Entry{{ID: 0, Identity: []byte("a")}, {ID: 1, Identity: []byte("B")}, {ID: 7, Identity: []byte("x")}})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range r.Orphans {
		fmt.Printf("orphan: %d %s\n", t.ID, name(t.Blob))
	}
	for _, e := range r.Missing {
		fmt.Printf("missing: %d %s\n", e.ID, e.Identity)
	}
	for _, m := range r.Mismatches {
		fmt.Printf("mismatch: %d is %s, not %s\n", m.ID, name(m.Blob), m.Identity)
	}
	fmt.Println("matched:", r.Matched)
	w.Close()
	// Output:
	// orphan: 2 c
	// missing: 7 x
	// mismatch: 1 is b, not B
	// matched: 1
}

// A stock pool becomes extended, and back: mappings and sharing are kept,
// and ids beyond the kernel's 24 bits are renumbered on the way back.
func ExampleDowngrade() {
	path := metadataFile()
	defer os.RemoveAll(filepath.Dir(path))
	md, err := thin.CreateMetadata(path, &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000})
	if err != nil {
		log.Fatal(err)
	}
	if err := md.CreateThin(5); err != nil {
		log.Fatal(err)
	}
	if _, err := md.Map(5, 0); err != nil {
		log.Fatal(err)
	}
	if err := blob.Upgrade(md, 64, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println("variant:", md.Variant(), "next id:", md.NextID())
	// The extended pool takes any 64-bit id.
	if err := md.CreateSnapshotWithBlob(1<<40, 5, make([]byte, 64)); err != nil {
		log.Fatal(err)
	}
	changes, err := blob.Downgrade(md, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("variant:", md.Variant(), "renumbered:", changes)
	m, _, err := md.Lookup(0, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("thin 0 maps block 0 to data block", m.Block)
	md.Close()
	// Output:
	// variant: extended next id: 6
	// variant: stock renumbered: [{1099511627776 0}]
	// thin 0 maps block 0 to data block 0
}
