package restore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/thinmeta/thinmeta/internal/memdev"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/restore"
)

// FuzzRestore restores arbitrary input into a sparse metadata device of
// any size the format allows (chosen by the fuzzer). It must never panic;
// an input it accepts must give metadata our checker finds consistent
// (but for mapped_blocks, which is taken from the input verbatim, as
// thin_restore takes it).
func FuzzRestore(f *testing.F) {
	dev := `<device dev_id="1" mapped_blocks="13" transaction="0" creation_time="0" snap_time="0">`
	seeds := []string{
		sb + "</superblock>",
		sb + dev + `<single_mapping origin_block="0" data_block="7" time="8"/><range_mapping origin_begin="10" data_begin="20" length="12" time="9"/></device></superblock>`,
		`<?xml version="1.0"?><!-- c --><superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="3000">` +
			`<def name="a"><range_mapping origin_begin="0" data_begin="0" length="600" time="1"/></def>` +
			`<def name="b"><range_mapping origin_begin="1000" data_begin="600" length="30" time="1"/></def>` +
			dev + `<ref name="a"/><single_mapping origin_block="700" data_block="2000" time="0"/><ref name="b"/></device>` +
			`<device dev_id="2" mapped_blocks="630" transaction="0" creation_time="0" snap_time="0"><ref name="a"/><ref name="b"/></device>` +
			`<device dev_id="3" mapped_blocks="30" transaction="0" creation_time="0" snap_time="0"><ref name="b"/></device></superblock>`,
		sb + `<device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0"/></superblock>`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint32(240+i*1000))
	}
	f.Add([]byte(sb+"</superblock>"), uint32(spacemap.MaxMetadataBlocks-16)) // the largest metadata device
	f.Fuzz(func(t *testing.T, in []byte, metaBlocks uint32) {
		// Any metadata device the format allows, sparse; what a restore
		// may write is budgeted (a huge data device takes as many bitmaps
		// on a real device too), not the sizes the input may give.
		size := int64(16+uint64(metaBlocks)%spacemap.MaxMetadataBlocks) * 4096
		d := &budgetDevice{Sparse: memdev.NewSparse(nil, size), left: 64 << 20}
		_, err := restore.Restore(context.Background(), bytes.NewReader(in), d, size, restore.Options{})
		if err != nil {
			return
		}
		check.Device(context.Background(), d, d.Size(), check.Options{}, func(fd check.Finding) {
			if !errors.Is(fd.Err, check.ErrMappedBlocks) {
				t.Fatalf("accepted input gives inconsistent metadata: %s: %v\ninput: %q", fd.Area, fd.Err, in)
			}
		})
	})
}

// budgetDevice fails writes once left bytes have been written: the work
// one fuzz input may cause is bounded, whatever sizes it gives.
type budgetDevice struct {
	*memdev.Sparse
	left int64
}

var errWriteBudget = errors.New("fuzz write budget exhausted")

func (d *budgetDevice) WriteAt(p []byte, off int64) (int, error) {
	if d.left -= int64(len(p)); d.left < 0 {
		return 0, errWriteBudget
	}
	return d.Sparse.WriteAt(p, off)
}
