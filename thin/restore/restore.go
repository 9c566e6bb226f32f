package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/internal/meter"
	"github.com/thinmeta/thinmeta/transaction"
)

// Options tune Restore.
type Options struct {
	// TransactionID, DataBlockSize and NrDataBlocks, if not nil, replace
	// the superblock's values from the input (thin_restore's
	// --transaction-id, --data-block-size and --nr-data-blocks). They are
	// validated as the input's would be.
	TransactionID *uint64
	DataBlockSize *uint32
	NrDataBlocks  *uint64
	// MetadataBlocks, if not 0, limits the metadata to the first
	// MetadataBlocks blocks of the device.
	MetadataBlocks uint64
	// Progress, if not nil, is called as the restore goes (see
	// thin.Progress) with Done counting the bytes of input read and Total
	// set to InputSize.
	Progress func(thin.Progress)
	// InputSize is the length of the input in bytes, if known (0 if not),
	// the Total of the progress reports. RestoreFile sets it.
	InputSize int64
	// Wait, for RestoreFile, waits while another process reads or writes
	// the output (holds its lock) instead of failing with thin.ErrLocked.
	Wait bool
}

// Stats describe a restored pool.
type Stats struct {
	Devices int // thin devices
	Defs    int // <def> elements (shared subtrees)
	// Mappings counts the mappings of all devices; those of a shared
	// subtree count once per device using it.
	Mappings uint64
	// Leaves is the number of mapping-tree leaves written, SharedLeaves
	// how many of those more than one device uses.
	Leaves, SharedLeaves uint64
	// MetadataBlocks and DataBlocks are the blocks in use in the metadata
	// and data space maps.
	MetadataBlocks, DataBlocks uint64
}

// InputError is a problem with the input: malformed XML, or content that
// thin_restore refuses (FORMAT.md §8.2, §8.3).
type InputError struct {
	Line int64 // the 1-based line of the input at fault
	Msg  string
	// Err, if not nil, is the error Msg describes, such as one wrapping
	// thin.ErrMetadataTooSmall or thin.ErrRange.
	Err error
}

// Error implements error.
func (e *InputError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Unwrap returns Err.
func (e *InputError) Unwrap() error { return e.Err }

// BuildError is a failure while writing the metadata for some element of
// the input, such as a metadata device too small or an I/O error.
type BuildError struct {
	Line int64 // the 1-based line of the input element being restored
	Err  error
}

// Error implements error.
func (e *BuildError) Error() string {
	return fmt.Sprintf("restoring line %d: %v", e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *BuildError) Unwrap() error { return e.Err }

// batchLen is how many ops the parser queues before the builder carries
// them out; tests make it small.
var batchLen = 4096

// Restore reads thin_dump XML (of thin-provisioning-tools 0.9.0 or 1.x,
// including 1.x shared subtrees, <def> and <ref>) from r and writes the
// pool it describes to dev, a metadata device of size bytes, as
// thin_restore 0.9.0 does: a superblock with the version (1 if absent),
// time, transaction id and flags of the input (overridable through opts),
// no metadata snapshot, a metadata space map over the whole device (up to
// the most one can track), a data space map of nr_data_blocks blocks, and
// each device's details as given except mapped_blocks, which is counted
// from the mappings (thin_restore 1.x copies the XML's value; 0.9.0, the
// oracle here, counts). Leaves of a <def> are written once and shared by
// every device that refers to them.
//
// The input is parsed and checked while the trees are built, a batch of
// ops at a time; leaves are encoded, checksummed, counted and written on
// other goroutines, a batch of them at a time.
// Nothing is written until the <superblock> tag has been read and
// accepted; then block 0 is zeroed first and the superblock is written
// last, after a flush, so a restore that fails later leaves no pool on
// dev. Input problems are reported as *InputError, failures writing the
// pool as *BuildError; both name the input line.
//
// When ctx is done before the restore is, Restore stops within a few
// milliseconds and returns ctx.Err(). As with any other failure, dev is
// then left as it was if the <superblock> tag had not been read, and
// without a valid superblock (block 0 zeroed) if it had: never with a
// pool that looks valid. A restore reading a pipe notices the
// cancellation at its next read.
func Restore(ctx context.Context, r io.Reader, dev transaction.Device, size int64, opts Options) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	m := meter.New(ctx, opts.Progress, "input", uint64(max(opts.InputSize, 0)), chunkSize)
	var read int64
	lx := newLexer(r, func(n int64) {
		m.Add(uint64(n - read))
		read = n
	})
	p := newParser(lx, &opts)
	h, err := p.readHeader()
	if err != nil {
		return Stats{}, err
	}
	// The data space map must fit, with what every pool has.
	nr := uint64(max(size, 0)) / transaction.BlockSize
	if opts.MetadataBlocks != 0 {
		nr = min(nr, opts.MetadataBlocks)
	}
	if err := thin.CheckDataSize(h.nrDataBlocks, nr); err != nil {
		return Stats{}, &InputError{Line: h.line, Msg: err.Error(), Err: err}
	}
	b, err := thin.NewBuild(dev, size, opts.MetadataBlocks)
	if err != nil {
		return Stats{}, err
	}
	bd := newBuilder(b, dev, h)
	defer bd.release()
	bd.lw.ahead = sendAhead
	if err := run(p, bd, m); err != nil {
		// A write error of leaves sent ahead (leafwriter.go) that would
		// have stopped the restore before err wins over it.
		return Stats{}, bd.lw.settle(err)
	}
	if err := bd.finish(m); err != nil {
		if ctxErr := m.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return Stats{}, ctxErr
		}
		if errors.Is(err, spacemap.ErrNoMetadataSpace) {
			err = fmt.Errorf("the metadata device is too small (%d blocks): %w", bd.msm.NrBlocks(), err)
		}
		return Stats{}, err
	}
	m.Finish()
	return bd.stats, nil
}

// sendAhead lets Restore's leaf writer send a batch before the one in
// flight is written (leafWriter.ahead); tests turn it off to compare.
var sendAhead = true

// run parses and builds on this goroutine, a batch of ops at a time, until
// m's context is done; the leaves are encoded, checksummed, counted and
// written on others (leafwriter.go). (Parsing on one goroutine and building on
// another, as before, cost more in handing the ops over between the cores
// than it saved.)
func run(p *parser, bd *builder, m *meter.Meter) error {
	return p.run(&batch{ops: make([]op, 0, batchLen)}, func(b *batch) (*batch, error) {
		if err := m.Err(); err != nil {
			return nil, err
		}
		if err := bd.apply(b); err != nil {
			return nil, err
		}
		b.reset()
		return b, nil
	})
}

// RestoreFile restores the XML file at input to the metadata file or block
// device at output, which must exist (a file is used at its current size).
// The output is opened exclusively, as for any write, and may not be the
// input (thin.ErrSameFile).
func RestoreFile(ctx context.Context, input, output string, opts Options) (Stats, error) {
	in, err := os.Open(input)
	if err != nil {
		return Stats{}, err
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil && st.Mode().IsRegular() && opts.InputSize == 0 {
		opts.InputSize = st.Size()
	}
	dev, size, err := devfile.OpenWrite(output, &devfile.Options{Wait: opts.Wait})
	if err != nil {
		return Stats{}, err
	}
	if err := devfile.CheckNotSame(output, in); err != nil {
		dev.Close()
		return Stats{}, err
	}
	st, err := Restore(ctx, in, dev, size, opts)
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = cerr
	}
	var ie *InputError
	if errors.As(err, &ie) {
		err = fmt.Errorf("%s: %w", input, err)
	}
	return st, err
}
