package live

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
)

// Status lines as dm-thin.c's pool_status prints them (the format is pinned
// against the real kernel by the guest test TestGuestStatusAgainstDmsetup).
func TestParsePoolStatus(t *testing.T) {
	for _, c := range []struct {
		line string
		want PoolStatus
	}{
		{"0 11/2048 0/8192 - rw discard_passdown queue_if_no_space - 512 ",
			PoolStatus{UsedMetadataBlocks: 11, TotalMetadataBlocks: 2048, TotalDataBlocks: 8192, MetadataLowWater: 512}},
		{"7 130/1024 8000/8192 94 out_of_data_space no_discard_passdown error_if_no_space needs_check 256",
			PoolStatus{TransactionID: 7, UsedMetadataBlocks: 130, TotalMetadataBlocks: 1024, UsedDataBlocks: 8000,
				TotalDataBlocks: 8192, HeldRoot: 94, Mode: OutOfDataSpace, Discard: NoDiscardPassdown, ErrorIfNoSpace: true,
				NeedsCheck: true, MetadataLowWater: 256}},
		{"18446744073709551615 1/16 1/1 - ro ignore_discard queue_if_no_space -",
			PoolStatus{TransactionID: 1<<64 - 1, UsedMetadataBlocks: 1, TotalMetadataBlocks: 16, UsedDataBlocks: 1,
				TotalDataBlocks: 1, Mode: ReadOnly, Discard: IgnoreDiscard}},
		{"3 1/16 0/1 - rw discard_passdown queue_if_no_space - 4 future words",
			PoolStatus{TransactionID: 3, UsedMetadataBlocks: 1, TotalMetadataBlocks: 16, TotalDataBlocks: 1,
				MetadataLowWater: 4, Extra: []string{"future", "words"}}},
		{"Fail", PoolStatus{Mode: Failed}},
	} {
		got, err := ParsePoolStatus(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.line, got, c.want)
		}
	}
	for _, bad := range []string{"", "Error", "0 11/2048 0/8192 - rw", "x 1/2 1/2 - rw discard_passdown queue_if_no_space -",
		"0 3/2 1/2 - rw discard_passdown queue_if_no_space -", "0 1/2 1/2 - maybe discard_passdown queue_if_no_space -",
		"0 1/2 1/2 - rw discard_passdown queue_if_no_space what", "0 1-2 1/2 - rw discard_passdown queue_if_no_space -"} {
		if _, err := ParsePoolStatus(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	s, _ := ParsePoolStatus("0 11/2048 100/8192 - rw discard_passdown queue_if_no_space - 512")
	if s.FreeDataBlocks() != 8092 || s.FreeMetadataBlocks() != 2037 {
		t.Errorf("free counts %d %d", s.FreeDataBlocks(), s.FreeMetadataBlocks())
	}
}

func TestParseThinStatus(t *testing.T) {
	for line, want := range map[string]ThinStatus{
		"0 -":          {},
		"1024 4095":    {MappedSectors: 1024, HighestSector: 4095, HasMapped: true},
		"Fail":         {Failed: true},
		"131072 65535": {MappedSectors: 131072, HighestSector: 65535, HasMapped: true},
	} {
		if got, err := ParseThinStatus(line); err != nil || got != want {
			t.Errorf("%q: %+v %v", line, got, err)
		}
	}
	for _, bad := range []string{"", "1", "a -", "1 b", "1 2 3"} {
		if _, err := ParseThinStatus(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Table lines round-trip, with the features in the order the kernel's
// emit_flags prints them (so a table we load reads back identically).
func TestPoolTable(t *testing.T) {
	tab := PoolTable{MetadataDev: "254:0", DataDev: "254:16", BlockSize: 128, LowWater: 10,
		Features: Features{SkipBlockZeroing: true, NoDiscardPassdown: true, ErrorIfNoSpace: true}}
	want := "254:0 254:16 128 10 3 skip_block_zeroing no_discard_passdown error_if_no_space"
	if tab.String() != want {
		t.Fatalf("%q, want %q", tab.String(), want)
	}
	back, err := ParsePoolTable(want)
	if err != nil || back != tab {
		t.Fatalf("parsed %+v %v", back, err)
	}
	// The kernel prints a trailing blank and "0" features as "0".
	if got, err := ParsePoolTable("254:0 254:16 1024 0 0 "); err != nil || got.Features != (Features{}) || got.BlockSize != 1024 {
		t.Fatalf("no features: %+v %v", got, err)
	}
	for _, bad := range []string{"254:0 254:16 128", "254:0 254:16 x 0", "254:0 254:16 128 0 2 read_only",
		"254:0 254:16 128 0 1 fast"} {
		if _, err := ParsePoolTable(bad); !errors.Is(err, ErrNotPool) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	th := ThinTable{PoolDev: "253:2", ID: 16777215}
	if (PoolTable{MetadataDev: "1:2", DataDev: "3:4", BlockSize: 256}).String() != "1:2 3:4 256 0 0" {
		t.Fatal("a table without features has no feature count")
	}
	if th.String() != "253:2 16777215" {
		t.Fatal(th.String())
	}
	if got, err := ParseThinTable("253:2 7 8:16"); err != nil || got != (ThinTable{"253:2", 7, "8:16"}) {
		t.Fatalf("%+v %v", got, err)
	}
	if f, err := ParseFeatures("skip_block_zeroing,ignore_discard read_only"); err != nil ||
		f != (Features{SkipBlockZeroing: true, IgnoreDiscard: true, ReadOnly: true}) {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := ParseFeatures("skip_block_zeroing,ignore_discard,read_only,no_discard_passdown,error_if_no_space"); err == nil {
		t.Fatal("five features accepted (the kernel takes four)")
	}
}

// Metadata the kernel cannot run, or should not, is refused before the
// kernel is asked, with an error that says what to do.
func TestCheckMetadataRefuses(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, opts *thin.FormatOptions, change func(*thin.Metadata)) string {
		t.Helper()
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(4 << 20)
		f.Close()
		md, err := thin.CreateMetadata(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(md)
		}
		if err := md.Commit(); err != nil {
			t.Fatal(err)
		}
		md.Close()
		return p
	}
	stock := &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000}
	good := mk("good", stock, func(md *thin.Metadata) {
		md.CreateThin(1)
		md.Map(1, 5)
	})
	if bs, n, err := checkMetadata(good, false, false); err != nil || bs != 128 || n != 1000 {
		t.Fatalf("good metadata: %d %d %v", bs, n, err)
	}
	needs := mk("needs", stock, func(md *thin.Metadata) { md.SetNeedsCheck(true) })
	if _, _, err := checkMetadata(needs, false, false); !errors.Is(err, ErrNeedsCheck) {
		t.Fatalf("needs_check: %v", err)
	}
	if _, _, err := checkMetadata(needs, true, false); err != nil {
		t.Fatalf("needs_check forced: %v", err)
	}
	ext := mk("ext", &thin.FormatOptions{DataBlockSize: 128, NrDataBlocks: 1000, Variant: thin.Extended, BlobSize: 16}, nil)
	_, _, err := checkMetadata(ext, false, false)
	if !errors.Is(err, ErrExtended) || !strings.Contains(err.Error(), "thinmeta convert --to stock") {
		t.Fatalf("extended: %v", err)
	}
	zero := filepath.Join(dir, "zero")
	os.WriteFile(zero, make([]byte, 1<<20), 0o644)
	if _, _, err := checkMetadata(zero, false, false); !errors.Is(err, ErrNotFormatted) {
		t.Fatalf("all zero: %v", err)
	}
	// A leaked data block (its count raised behind the trees' back) fails
	// the full check, not the superblock-only one.
	leak := mk("leak", stock, func(md *thin.Metadata) {
		md.CreateThin(1)
		md.Map(1, 0)
		if err := md.DataSpaceMap().Inc(900); err != nil {
			t.Fatal(err)
		}
	})
	if _, _, err := checkMetadata(leak, false, false); !errors.Is(err, ErrCheckFailed) {
		t.Fatalf("leak: %v", err)
	}
	if _, _, err := checkMetadata(leak, false, true); err != nil {
		t.Fatalf("leak, superblock only: %v", err)
	}
}

func TestArgumentsRefused(t *testing.T) {
	for _, c := range []struct {
		opts CreateOptions
		want error
	}{
		{CreateOptions{BlockSize: 100}, ErrBlockSize},
		{CreateOptions{BlockSize: 2097152 + 128}, ErrBlockSize},
		{CreateOptions{BlockSize: 192 + 1}, ErrBlockSize},
	} {
		if _, err := Create(nil, "p", c.opts); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v", c.opts, err)
		}
	}
	if _, err := Create(nil, "p", CreateOptions{Format: true}); err == nil || !strings.Contains(err.Error(), "block size") {
		t.Errorf("format without a block size: %v", err)
	}
	p := &Pool{name: "p"}
	for _, err := range []error{p.CreateThin(1 << 24), p.DeleteThin(1 << 30),
		p.Snapshot(1<<24, 1, nil), p.Snapshot(1, 1<<24, nil)} {
		if !errors.Is(err, ErrBadID) {
			t.Errorf("%v: want ErrBadID", err)
		}
	}
	if _, err := p.ActivateThin("t", 1<<24, 8); !errors.Is(err, ErrBadID) {
		t.Errorf("activate: %v", err)
	}
}
