package ls

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/thin/internal/walk"
)

// Options tune List.
type Options struct {
	// Exclusive counts exclusive blocks for every device (needed by the
	// EXCLUSIVE_* and SHARED_* fields). It walks every mapping tree once,
	// counting data blocks and logging each device's runs of them; the
	// exclusive count of a device then comes from its log, or, when the
	// logs' budget ran out, from a second walk of its tree (which skips
	// the leaves the counts settle). Without it only the device-details
	// tree is read. Its memory is two bits per data block in use, at most
	// 2 MiB of run logs and at most 2 MiB of leaf summaries.
	Exclusive bool
	// Workers is the number of goroutines walking mapping trees; 0 means
	// GOMAXPROCS.
	Workers int
	// Progress, if not nil, is called as the listing goes (see
	// thin.Progress). With Exclusive, Done counts the mappings walked and
	// Total is twice the devices' mapped_blocks (every mapping is counted
	// twice: by the walk, then from the log or by the second walk);
	// without it, one report counts the devices.
	Progress func(thin.Progress)
}

// Device is one row of thin_ls: a thin device's details and, if counted,
// its exclusive blocks.
type Device struct {
	ID uint64
	thin.Details
	// ExclusiveBlocks is the number of the device's mappings whose data
	// block no other mapping names. Zero unless Options.Exclusive.
	ExclusiveBlocks uint64
}

// SharedBlocks returns MappedBlocks less ExclusiveBlocks, wrapping as
// thin_ls's unsigned arithmetic does.
func (d Device) SharedBlocks() uint64 { return d.MappedBlocks - d.ExclusiveBlocks }

// Report is what List found.
type Report struct {
	// DataBlockSize is the data block size in 512-byte sectors, from the
	// superblock of the view listed.
	DataBlockSize uint32
	// Devices are in id order.
	Devices []Device
	// Exclusive reports whether ExclusiveBlocks were counted.
	Exclusive bool
}

// ErrNoMappingRoot means a device of the details tree has no entry in the
// top level of the mapping tree; thin_ls fails with "couldn't find mapping
// tree root" then.
var ErrNoMappingRoot = errors.New("couldn't find mapping tree root")

// List reads the devices of p (a live or metadata-snapshot view).
//
// As thin_ls does, a live view opens the metadata space map (so a damaged
// space-map index fails the listing), devices come from the device-details
// tree, and exclusive counting looks each one up in the top level of the
// mapping tree. Damage in any tree read fails the whole listing with an
// error wrapping a *transaction.CorruptError.
//
// When ctx is done before the listing is, List stops within a few
// milliseconds and returns ctx.Err().
func List(ctx context.Context, p *thin.Pool, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !p.IsSnapshot() {
		if _, err := p.MetadataSpaceMap(); err != nil {
			return nil, err
		}
	}
	details, err := walk.Details(p)
	if err != nil {
		return nil, err
	}
	rep := &Report{DataBlockSize: p.Superblock().DataBlockSize, Exclusive: opts.Exclusive}
	rep.Devices = make([]Device, len(details))
	for i, d := range details {
		rep.Devices[i] = Device{ID: d.ID, Details: d.Details}
	}
	total := uint64(len(details))
	if opts.Exclusive {
		total = 0
		for _, d := range details {
			total = satAdd(total, satAdd(d.MappedBlocks, d.MappedBlocks))
		}
	}
	m := meter.New(ctx, opts.Progress, "mappings", total, 0)
	if opts.Exclusive {
		if err := countExclusive(p, rep.Devices, opts.Workers, m); err != nil {
			return nil, err
		}
	}
	if err := m.Err(); err != nil {
		return nil, err
	}
	m.Finish()
	return rep, nil
}

// satAdd returns a+b, or the largest uint64 if that overflows (the
// mapped_blocks of damaged details can be anything).
func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// countExclusive fills in ExclusiveBlocks: a first walk of every device's
// tree counts the mappings of each data block (saturating at two) and logs
// the runs of each device (runLog); then, per device, the mappings of
// blocks counted once are counted from its log, or by a second walk of its
// tree where the log did not fit. Both go a run of consecutive data blocks
// at a time, and every goroutine counts into one shared set (counts).
func countExclusive(p *thin.Pool, devs []Device, workers int, m *meter.Meter) error {
	roots := make([]uint64, len(devs))
	for i, d := range devs {
		root, err := p.Root(d.ID)
		if errors.Is(err, thin.ErrNoDevice) {
			return fmt.Errorf("device %d: %w", d.ID, ErrNoMappingRoot)
		}
		if err != nil {
			return err
		}
		roots[i] = root
	}
	// Biggest devices first, so the workers finish together.
	order := make([]int, len(devs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(devs[b].MappedBlocks, devs[a].MappedBlocks) })
	nw := walk.Workers(workers, len(devs))
	c := &counts{}
	defer c.release() // every walk.Parallel worker has returned by then
	readers := make([]*walkReader, nw)
	cursors := make([]cursor, nw)
	var budget atomic.Int64
	budget.Store(maxSummaries)
	for w := range nw {
		readers[w] = newWalkReader(p, m, &budget)
		cursors[w] = cursor{c: c}
	}
	sums := make([]sumList, len(devs))
	pool := newLogPool(maxLogBytes)
	defer pool.release()
	logs := make([]runLog, len(devs))
	for i := range logs {
		logs[i].pool = pool
	}
	err := walk.Parallel(order, nw, func(w, i int) error {
		return readers[w].inc(roots[i], &cursors[w], &sums[i], &logs[i])
	})
	if err != nil {
		return err
	}
	for w := range cursors {
		cursors[w] = cursor{c: c}
	}
	return walk.Parallel(order, nw, func(w, i int) error {
		var n uint64
		var err error
		if logs[i].complete() {
			n, err = readers[w].exclusiveLogged(&logs[i], &cursors[w])
		} else {
			n, err = readers[w].exclusive(roots[i], &cursors[w], &sums[i])
		}
		sums[i] = sumList{}
		devs[i].ExclusiveBlocks = n
		return err
	})
}

// Format writes the report as thin_ls does: one line of headers (unless
// headers is false), then one line per device, each value right-aligned
// in a column as wide as its widest entry and followed by a space. No
// fields give no output at all.
func (r *Report) Format(w io.Writer, fields []Field, headers bool) error {
	if !r.Exclusive && needExclusive(fields) {
		return errors.New("exclusive counts were not computed")
	}
	if len(fields) == 0 {
		return nil
	}
	nrows := len(r.Devices)
	if headers {
		nrows++
	}
	cells := make([]string, 0, nrows*len(fields))
	if headers {
		for _, f := range fields {
			cells = append(cells, f.String())
		}
	}
	for _, d := range r.Devices {
		for _, f := range fields {
			cells = append(cells, r.Value(d, f))
		}
	}
	widths := make([]int, len(fields))
	for i, c := range cells {
		widths[i%len(fields)] = max(widths[i%len(fields)], len(c))
	}
	var b bytes.Buffer
	for i, c := range cells {
		col := i % len(fields)
		for range widths[col] - len(c) {
			b.WriteByte(' ')
		}
		b.WriteString(c)
		b.WriteByte(' ')
		if col == len(fields)-1 {
			b.WriteByte('\n')
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Value returns the text of one field of one device as thin_ls prints it.
func (r *Report) Value(d Device, f Field) string {
	bs := uint64(r.DataBlockSize)
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	switch f {
	case DevID:
		return u(d.ID)
	case MappedBlocks:
		return u(d.MappedBlocks)
	case ExclusiveBlocks:
		return u(d.ExclusiveBlocks)
	case SharedBlocks:
		return u(d.SharedBlocks())
	case MappedSectors:
		return u(d.MappedBlocks * bs)
	case ExclusiveSectors:
		return u(d.ExclusiveBlocks * bs)
	case SharedSectors:
		return u(d.SharedBlocks() * bs)
	case MappedBytes:
		return u(d.MappedBlocks * bs * 512)
	case ExclusiveBytes:
		return u(d.ExclusiveBlocks * bs * 512)
	case SharedBytes:
		return u(d.SharedBlocks() * bs * 512)
	case Mapped:
		return formatSize(d.MappedBlocks * bs)
	case Exclusive:
		return formatSize(d.ExclusiveBlocks * bs)
	case Shared:
		return formatSize(d.SharedBlocks() * bs)
	case Transaction:
		return u(d.TransactionID)
	case CreateTime:
		return u(uint64(d.CreationTime))
	case SnapTime:
		return u(uint64(d.SnapshottedTime))
	}
	return ""
}
