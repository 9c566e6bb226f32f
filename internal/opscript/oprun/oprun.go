// Package oprun runs scripts of the operation language of package
// opscript against a pool in a file, for the datadriven tests and for
// replaying a failing random case or a generator's record.
package oprun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/blob"
	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/opscript"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/superblock"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
	"github.com/thinmeta/thinmeta/thin/dump"
	"github.com/thinmeta/thinmeta/transaction"
)

// sentinels are the errors an operation's failure is printed as, by name.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrClosed", thin.ErrClosed},
	{"ErrTransactionChanged", thin.ErrTransactionChanged},
	{"ErrNoSpaceMaps", thin.ErrNoSpaceMaps},
	{"ErrNoDevice", thin.ErrNoDevice},
	{"ErrExists", thin.ErrExists},
	{"ErrIDReused", thin.ErrIDReused},
	{"ErrIDRange", thin.ErrIDRange},
	{"ErrBlobSize", thin.ErrBlobSize},
	{"ErrNotExtended", thin.ErrNotExtended},
	{"ErrSnapshotHeld", thin.ErrSnapshotHeld},
	{"ErrNoMetadataSnapshot", superblock.ErrNoMetadataSnapshot},
	{"ErrTransactionID", thin.ErrTransactionID},
	{"ErrMappedTwice", thin.ErrMappedTwice},
	{"ErrShrink", thin.ErrShrink},
	{"ErrRange", thin.ErrRange},
	{"ErrNoSpace", spacemap.ErrNoSpace},
	{"ErrChecksum", transaction.ErrChecksum},
	{"ErrBlockNumber", transaction.ErrBlockNumber},
	{"ErrValueSize", btree.ErrValueSize},
}

// ErrorText prints an error as scripts expect it: "error: " and the name
// of the sentinel it wraps, or its message.
func ErrorText(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return "error: " + s.name
		}
	}
	return "error: " + err.Error()
}

// Runner runs operations against one pool, in a file of its own.
type Runner struct {
	tb    testing.TB
	path  string
	md    *thin.Metadata
	w     *blob.Writer // extended pools
	views map[string]*thin.Pool
}

// New returns a Runner with no pool yet: the first operation is format.
func New(tb testing.TB) *Runner {
	r := &Runner{tb: tb, path: filepath.Join(tb.TempDir(), "meta.img"), views: map[string]*thin.Pool{}}
	tb.Cleanup(r.close)
	return r
}

// Path returns the pool's file.
func (r *Runner) Path() string { return r.path }

// Metadata returns the writer, or nil once it is closed.
func (r *Runner) Metadata() *thin.Metadata { return r.md }

func (r *Runner) close() {
	for _, v := range r.views {
		v.Close()
	}
	if r.md != nil {
		r.md.Close()
	}
}

// Run runs a script, one operation a line, and returns what the
// operations printed; a failed operation prints its line, a colon and the
// error.
func (r *Runner) Run(script string) string {
	var b strings.Builder
	for _, line := range strings.Split(script, "\n") {
		op, ok := opscript.Parse(line)
		if !ok {
			continue
		}
		out, err := r.Exec(op)
		if err != nil {
			fmt.Fprintf(&b, "%s: %s\n", op, ErrorText(err))
			continue
		}
		b.WriteString(out)
	}
	return b.String()
}

// Exec runs one operation and returns what it prints (each line ending in
// a newline), or its error.
func (r *Runner) Exec(op opscript.Op) (string, error) {
	a := op.Args
	num := func(i int) uint64 {
		if i >= len(a) {
			r.tb.Fatalf("%s: argument %d missing", op, i+1)
		}
		n, err := strconv.ParseUint(a[i], 10, 64)
		if err != nil {
			r.tb.Fatalf("%s: %v", op, err)
		}
		return n
	}
	blobArg := func(i int) []byte {
		if i >= len(a) {
			return nil
		}
		b, err := opscript.ParseBlob(a[i], 0)
		if err != nil {
			r.tb.Fatalf("%s: %v", op, err)
		}
		return b
	}
	if op.Name == "format" {
		return "", r.format(a)
	}
	if r.md == nil && !strings.Contains(" dump thin_dump check space_maps open close reopen ", " "+op.Name+" ") {
		return "", thin.ErrClosed
	}
	md := r.md
	switch op.Name {
	case "create_thin":
		if r.w != nil {
			return "", r.w.CreateThin(num(0), blobArg(1))
		}
		if len(a) > 1 {
			return "", md.CreateThinWithBlob(num(0), blobArg(1))
		}
		return "", md.CreateThin(num(0))
	case "create_snap":
		if r.w != nil {
			return "", r.w.CreateSnapshot(num(0), num(1), blobArg(2))
		}
		if len(a) > 2 {
			return "", md.CreateSnapshotWithBlob(num(0), num(1), blobArg(2))
		}
		return "", md.CreateSnapshot(num(0), num(1))
	case "new_thin", "new_snap", "allocate_id", "set_blob", "next_id", "count":
		if r.w == nil {
			return "", thin.ErrNotExtended
		}
		var id uint64
		var err error
		switch op.Name {
		case "new_thin":
			id, err = r.w.NewThin(blobArg(0))
		case "new_snap":
			id, err = r.w.NewSnapshot(num(0), blobArg(1))
		case "allocate_id":
			id, err = r.w.AllocateID()
		case "set_blob":
			return "", r.w.SetBlob(num(0), blobArg(1))
		case "next_id":
			return fmt.Sprintf("next_id %d\n", r.w.NextID()), nil
		case "count":
			return fmt.Sprintf("count %d\n", r.w.Count()), nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("id %d\n", id), nil
	case "delete":
		return "", md.Delete(num(0))
	case "map":
		return "", md.MapRange(num(0), num(1), num(2))
	case "map_to":
		n := uint64(1)
		if len(a) > 3 {
			n = num(3)
		}
		id, v, d := num(0), num(1), num(2)
		for k := range n {
			if err := md.DataSpaceMap().Inc(d + k); err != nil {
				return "", err
			}
			if err := md.MapTo(id, v+k, d+k); err != nil {
				md.DataSpaceMap().Dec(d + k)
				return "", err
			}
		}
		return "", nil
	case "unmap":
		_, err := md.Unmap(num(0), num(1), num(2))
		return "", err
	case "set_transaction_id":
		return "", md.SetTransactionID(num(0), num(1))
	case "reserve_metadata_snap":
		return "", md.ReserveMetadataSnapshot()
	case "release_metadata_snap":
		return "", md.ReleaseMetadataSnapshot()
	case "resize_data":
		return "", md.ResizeData(num(0))
	case "commit":
		return "", md.Commit()
	case "abort":
		return "", md.Abort()
	case "reopen":
		if md != nil {
			if err := r.closeWriter(); err != nil {
				return "", err
			}
		}
		return "", r.openWriter()
	case "open":
		return "", r.open(a)
	case "close":
		if len(a) != 1 {
			r.tb.Fatalf("%s: close NAME or close writer", op)
		}
		if a[0] == "writer" {
			return "", r.closeWriter()
		}
		v, ok := r.views[a[0]]
		if !ok {
			r.tb.Fatalf("%s: no view %q", op, a[0])
		}
		return "", v.Close()
	case "dump":
		return r.dump(a)
	case "check":
		return r.check(a)
	case "thin_dump":
		return r.thinDump(a), nil
	case "space_maps":
		p, err := r.pool(a)
		if err != nil {
			return "", err
		}
		d, err := p.DataSpaceMap()
		if err != nil {
			return "", err
		}
		m, err := p.MetadataSpaceMap()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("data %d blocks, metadata %d blocks\n", d.NrBlocks(), m.NrBlocks()), nil
	}
	r.tb.Fatalf("unknown operation %q", op)
	return "", nil
}

func (r *Runner) format(a []string) error {
	opts := &thin.FormatOptions{Size: 1024 * transaction.BlockSize}
	for _, arg := range a {
		k, v, _ := strings.Cut(arg, "=")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "data":
			opts.NrDataBlocks = n
		case "meta":
			opts.Size = int64(n) * transaction.BlockSize
		case "block_size":
			opts.DataBlockSize = uint32(n)
		case "extended":
			opts.Variant = thin.Extended
		case "blob_size":
			opts.BlobSize = int(n)
		case "index_bytes":
			opts.IndexBytes = int(n)
		default:
			r.tb.Fatalf("format: unknown argument %q", arg)
		}
	}
	r.close()
	os.Remove(r.path)
	if opts.Variant == thin.Extended {
		w, err := blob.Create(r.path, opts)
		if err != nil {
			return err
		}
		r.w, r.md = w, w.Metadata()
		return nil
	}
	md, err := thin.CreateMetadata(r.path, opts)
	if err != nil {
		return err
	}
	r.md, r.w = md, nil
	return nil
}

func (r *Runner) closeWriter() error {
	var err error
	if r.w != nil {
		err = r.w.Close()
	} else if r.md != nil {
		err = r.md.Close()
	}
	r.md = nil
	return err
}

func (r *Runner) openWriter() error {
	if r.w != nil {
		w, err := blob.OpenWriter(r.path, nil)
		if err != nil {
			return err
		}
		r.w, r.md = w, w.Metadata()
		return nil
	}
	md, err := thin.OpenMetadata(r.path, nil)
	if err != nil {
		return err
	}
	r.md = md
	return nil
}

func (r *Runner) open(a []string) error {
	if len(a) < 2 {
		r.tb.Fatalf("open NAME committed|view|file|snapshot OF")
	}
	var p *thin.Pool
	var err error
	switch a[1] {
	case "committed":
		if r.md == nil {
			return thin.ErrClosed
		}
		p, err = r.md.Committed()
	case "view":
		if r.md == nil {
			return thin.ErrClosed
		}
		p = r.md.View()
	case "file":
		p, err = thin.Open(r.path, nil)
	case "snapshot":
		of, ok := r.views[a[2]]
		if !ok {
			r.tb.Fatalf("open %s snapshot: no view %q", a[0], a[2])
		}
		p, err = of.MetadataSnapshot()
	default:
		r.tb.Fatalf("open: unknown kind of view %q", a[1])
	}
	if err != nil {
		return err
	}
	if old, ok := r.views[a[0]]; ok {
		old.Close()
	}
	r.views[a[0]] = p
	return nil
}

// pool returns the view named by a[0], or a view of a copy of the
// device's bytes as committed.
func (r *Runner) pool(a []string) (*thin.Pool, error) {
	if len(a) > 0 && a[0] != "-m" {
		v, ok := r.views[a[0]]
		if !ok {
			r.tb.Fatalf("no view %q", a[0])
		}
		return v, nil
	}
	img, err := os.ReadFile(r.path)
	if err != nil {
		return nil, err
	}
	p, err := thin.NewPool(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, err
	}
	if len(a) > 0 {
		return p.MetadataSnapshot()
	}
	return p, nil
}

func (r *Runner) dump(a []string) (string, error) {
	p, err := r.pool(a)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := dump.Dump(context.Background(), &b, p, dump.Options{}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (r *Runner) check(a []string) (string, error) {
	p, err := r.pool(a)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	sum, _ := check.Pool(context.Background(), p, check.Options{}, func(f check.Finding) { fmt.Fprintf(&b, "%v\n", f) })
	if sum.OK(false) && b.Len() == 0 {
		return "ok\n", nil
	}
	return b.String(), nil
}

// thinDump runs thin_dump 0.9.0 on a copy of the device and returns its
// output; thin_dump 1.1.0 must describe the same pool, and thin_check of
// both generations must pass it.
func (r *Runner) thinDump(a []string) string {
	img, err := os.ReadFile(r.path)
	if err != nil {
		r.tb.Fatal(err)
	}
	cp := filepath.Join(r.tb.TempDir(), "copy.img")
	if err := os.WriteFile(cp, img, 0o644); err != nil {
		r.tb.Fatal(err)
	}
	args := append(append([]string(nil), a...), cp)
	res := tptest.RunGen(r.tb, tptest.V090, "thin_dump", args...)
	if res.Code != 0 {
		return fmt.Sprintf("thin_dump: exit %d: %s\n", res.Code, strings.TrimSpace(string(res.Stderr)))
	}
	tptest.CheckClean(r.tb, cp, a...)
	tptest.SameDump(r.tb, "thin_dump 1.1.0", tptest.MustRunGen(r.tb, tptest.V110, "thin_dump", args...).Stdout, res.Stdout)
	return string(res.Stdout)
}
