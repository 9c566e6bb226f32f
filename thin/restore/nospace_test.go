package restore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// A dump too large for the metadata device fails with the full metadata
// device's sentinel (grow the metadata device), not the data device's.
func TestRestoreNoMetadataSpace(t *testing.T) {
	var x strings.Builder
	x.WriteString(`<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="100000">` + "\n")
	for i := range 100 { // a leaf each: more than 16 metadata blocks hold
		fmt.Fprintf(&x, `<device dev_id="%d" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">`+"\n", i)
		fmt.Fprintf(&x, `<single_mapping origin_block="0" data_block="%d" time="0"/>`+"\n</device>\n", i)
	}
	x.WriteString("</superblock>\n")
	dev := memdev.New(16 * 4096)
	_, err := restore.Restore(context.Background(), strings.NewReader(x.String()), dev, dev.Size(), restore.Options{})
	if !errors.Is(err, thin.ErrNoMetadataSpace) || errors.Is(err, thin.ErrNoDataSpace) || !errors.Is(err, spacemap.ErrNoSpace) {
		t.Fatalf("restore into 16 metadata blocks: %v", err)
	}
}
