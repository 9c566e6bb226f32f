package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// RestoreFile takes the writer's lock on its output (refused while a
// reader holds it, or waiting with Options.Wait) and refuses an output
// that is its input.
func TestRestoreFileLocks(t *testing.T) {
	dir := t.TempDir()
	xml := filepath.Join(dir, "pool.xml")
	const pool = `<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="100">
  <device dev_id="1" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="0" data_block="0" time="0"/>
  </device>
</superblock>
`
	if err := os.WriteFile(xml, []byte(pool), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "meta.img")
	if err := os.WriteFile(img, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.RestoreFile(context.Background(), xml, xml, restore.Options{}); !errors.Is(err, thin.ErrSameFile) {
		t.Fatalf("restore of a file onto itself: %v, want ErrSameFile", err)
	}
	if b, _ := os.ReadFile(xml); string(b) != pool {
		t.Fatal("the refused restore changed its input")
	}
	if _, err := restore.RestoreFile(context.Background(), xml, img, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	p, err := thin.Open(img, nil) // a reader in this process: not this process's writer
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.RestoreFile(context.Background(), xml, img, restore.Options{}); !errors.Is(err, thin.ErrLocked) {
		t.Fatalf("restore under a reader: %v, want ErrLocked", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := restore.RestoreFile(context.Background(), xml, img, restore.Options{Wait: true})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("restore with Wait did not wait for the reader: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatalf("restore with Wait: %v", err)
	}
}
