package restore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/internal/memtest"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// The largest data device a metadata device holds, as restore builds it
// (index leaves packed full), is thin.MaxDataBlocks: restore and
// thin_restore 1.1.0 both restore a pool of that many data blocks and
// both refuse one block more; ours refuses it before writing, with
// thin.ErrMetadataTooSmall, in bounded memory. (0.9.0 indexes by
// insertion and gives up a little earlier.)
func TestRestoreLargestDataDevice(t *testing.T) {
	for _, nrMeta := range []uint64{64, 2000, 16384} {
		most := thin.MaxDataBlocks(nrMeta)
		for _, n := range []uint64{most, most + 1} {
			xml := fmt.Sprintf(`<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="%d"></superblock>`, n)
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "out.img")
			os.WriteFile(in, []byte(xml), 0o644)
			os.WriteFile(out, make([]byte, nrMeta*4096), 0o644)
			theirs := tptest.RunGen(t, tptest.V110, "thin_restore", "-i", in, "-o", out).Code == 0
			d := memdev.New(int64(nrMeta) * 4096)
			var err error
			// A refusal is arithmetic; a restore may take what the metadata does.
			bound := uint64(2 << 20)
			if n == most {
				bound = 8<<20 + 2*nrMeta*4096
			}
			memtest.Bound(t, bound, "restore", func() {
				_, err = restore.Restore(context.Background(), strings.NewReader(xml), d, d.Size(), restore.Options{})
			})
			ours := err == nil
			if ours != theirs || ours != (n == most) {
				t.Errorf("%d metadata blocks, %d data blocks: restored %v, thin_restore 1.1.0 %v (%v)", nrMeta, n, ours, theirs, err)
			}
			if !ours && !errors.Is(err, thin.ErrMetadataTooSmall) {
				t.Errorf("%d metadata blocks, %d data blocks: %v, want ErrMetadataTooSmall", nrMeta, n, err)
			}
		}
	}
}
