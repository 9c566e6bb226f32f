package gen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
)

// variantNames are the names of the format variants in the text form.
var variantNames = []string{thin.Stock.String(), thin.Extended.String()}

// IDs says how the devices of an extended pool get their ids. Ids always
// increase in creation order (the pool refuses an id below its next id).
type IDs int

const (
	// Allocate: every id is handed out by the pool (thin.Metadata.
	// AllocateID): 0, 1, 2, ...
	Allocate IDs = iota
	// Wide: every id is chosen by the generator, above 2^32, with random
	// gaps that spread the ids up to near 2^64.
	Wide
	// Mixed: the first id is chosen as with Wide, each later one is
	// chosen (after a random gap) or handed out by the pool (the next id),
	// with even odds.
	Mixed
)

var idsNames = []string{"allocate", "wide", "mixed"}

// String returns the mode's name.
func (m IDs) String() string {
	if m >= 0 && int(m) < len(idsNames) {
		return idsNames[m]
	}
	return "ids(" + strconv.Itoa(int(m)) + ")"
}

// BlobFill says what the blobs of an extended pool hold. The key of a
// blob is its first Spec.IndexBytes bytes (the whole blob without an
// index); the tail is the rest.
type BlobFill int

const (
	// Named: the key is the device's name, "thin-<id>" in decimal
	// (truncated to the key if longer), padded with zero bytes; the tail
	// is pseudo-random. blob.Pool.Find finds the thin by its name.
	Named BlobFill = iota
	// RandomBlobs: key and tail are pseudo-random bytes (an opaque
	// identity such as a UUID).
	RandomBlobs
	// ZeroBlobs: every blob is zero, as after blob.Upgrade; no thin is
	// indexed.
	ZeroBlobs
)

var fillNames = []string{"named", "random", "zero"}

// String returns the fill's name.
func (f BlobFill) String() string {
	if f >= 0 && int(f) < len(fillNames) {
		return fillNames[f]
	}
	return "fill(" + strconv.Itoa(int(f)) + ")"
}

// Shape is the shape of the snapshot tree.
type Shape int

const (
	// Chain: the first snapshot is of a thin, each later one of the
	// snapshot before it (snapshots of snapshots).
	Chain Shape = iota
	// Fan: every snapshot is of a thin (round-robin over the thins).
	Fan
	// Tree: every snapshot is of a device chosen at random among those
	// existing, thins and snapshots alike.
	Tree
)

var shapeNames = []string{"chain", "fan", "tree"}

// String returns the shape's name.
func (s Shape) String() string {
	if s >= 0 && int(s) < len(shapeNames) {
		return shapeNames[s]
	}
	return "shape(" + strconv.Itoa(int(s)) + ")"
}

// Target says which side of a snapshot is written after it is taken.
type Target int

const (
	// Both: the origin and the new snapshot each get the rewrites.
	Both Target = iota
	// Origin: only the origin is written, as when a backup snapshot is
	// taken of a volume in use.
	Origin
	// Snapshot: only the new snapshot is written.
	Snapshot
)

var targetNames = []string{"both", "origin", "snapshot"}

// String returns the target's name.
func (t Target) String() string {
	if t >= 0 && int(t) < len(targetNames) {
		return targetNames[t]
	}
	return "target(" + strconv.Itoa(int(t)) + ")"
}

// Range is an inclusive range of counts; a value is drawn uniformly.
type Range struct{ Min, Max uint64 }

// String returns "N" or "MIN-MAX".
func (r Range) String() string {
	if r.Min == r.Max {
		return strconv.FormatUint(r.Min, 10)
	}
	return strconv.FormatUint(r.Min, 10) + "-" + strconv.FormatUint(r.Max, 10)
}

// Spec describes a pool to generate. Start from DefaultSpec; every field
// means what it says, zero included, except that a zero DataBlockSize
// means 128, a zero MeanRun means 1 and a zero BlobSize means 64 (in an
// extended pool; stock pools ignore the blob fields).
//
// A pool is built in phases, each through the write path exactly as the
// kernel would build it from a sequence of pool messages and writes:
//
//  1. Thins empty thin devices are created (stock ids 1..Thins; see IDs
//     for extended pools) and written: Mappings blocks each, in runs of
//     consecutive virtual blocks (mean length MeanRun) with unmapped gaps
//     (Sparsity), the runs of all thins interleaved as concurrent writers
//     would interleave them, so data blocks are allocated in that order.
//  2. Snapshots snapshots are taken one by one (stock ids Thins+1, ...),
//     in the given Shape; after each, Rewrite of the mapped blocks of the
//     Target side(s) are written again, which breaks the sharing of those
//     blocks (copy-on-write: new data blocks, shadowed nodes).
//  3. Discard of every device's mapped blocks are unmapped, in runs.
//  4. Deletions devices chosen at random are deleted.
//  5. With MetadataSnapshot a metadata snapshot is reserved, then one more
//     round of rewrites goes to a random device, so the live metadata and
//     the snapshot diverge.
//
// Every message (create, snapshot, delete) commits with a new
// transaction id, as LVM's do; data writes commit at the end of each
// phase and every CommitEvery mappings.
//
// In an extended pool (thin.Extended) every device is created with its
// blob in the same transaction (thin.Metadata.CreateThinWithBlob,
// CreateSnapshotWithBlob; with Bulk, CreateThinFromTree then SetBlob),
// its id as IDs says. Blobs and ids are drawn from a random stream of
// their own, so an extended pool has the same devices, mappings and data
// blocks as the stock pool of the same spec and seed.
type Spec struct {
	// Variant is the metadata format variant.
	Variant thin.Variant
	// Thins is the number of thin devices created empty and written.
	Thins int
	// Mappings is the number of blocks written to each thin.
	Mappings Range
	// MeanRun is the mean length of a run of consecutive virtual blocks
	// written together (geometric distribution; 1 writes single blocks).
	MeanRun float64
	// Sparsity is the fraction of each thin's written span left unmapped,
	// in gaps between runs (0 dense, 0.9 very sparse).
	Sparsity float64
	// Snapshots is the number of thin snapshots taken.
	Snapshots int
	// Shape is the shape of the snapshot tree.
	Shape Shape
	// Rewrite is the fraction of a device's mapped blocks written again
	// after a snapshot of it is taken (in runs, so some blocks may be
	// written twice).
	Rewrite float64
	// Target says which side(s) of each snapshot get the rewrites.
	Target Target
	// Discard is the fraction of each device's mapped blocks unmapped
	// after the snapshots.
	Discard float64
	// Deletions is the number of devices deleted after the snapshots.
	Deletions int
	// MetadataSnapshot reserves a metadata snapshot after the deletions,
	// then rewrites blocks of one device (Rewrite of them, at least one),
	// so the live pool moves on from the snapshot (phase 5 above).
	MetadataSnapshot bool
	// DataBlockSize is the data block size in 512-byte sectors.
	DataBlockSize uint32
	// NrDataBlocks is the size of the data device; 0 sizes it from what
	// the pool needs plus DataSlack.
	NrDataBlocks uint64
	// DataSlack is the fraction of free data blocks added to what the
	// pool needs when NrDataBlocks is 0 (0: a nearly full data device).
	DataSlack float64
	// MetadataBlocks is the size of the metadata device in 4 KiB blocks;
	// 0 sizes it from an estimate of what the pool needs.
	MetadataBlocks uint64
	// CommitEvery commits after that many data writes within a phase (0:
	// once per phase).
	CommitEvery int
	// Bulk writes the thins' initial mappings with the bulk builder
	// (btree.Builder: full leaves, every node written once) instead of
	// one by one, much faster for very large pools. Data blocks and
	// everything else are as without it; only the thins' initial trees
	// are packed fuller, as a restored pool's are.
	Bulk bool

	// The extended format's settings (ignored by stock pools).

	// BlobSize is the blob size in bytes (1 to thin.MaxBlobSize; 0 means
	// DefaultBlobSize).
	BlobSize int
	// IndexBytes is the number of leading blob bytes the blob index keys
	// on (0: no index; at most BlobSize).
	IndexBytes int
	// IDs says how the devices get their ids.
	IDs IDs
	// BlobFill says what the blobs hold.
	BlobFill BlobFill
	// DuplicateKeys is the probability that a device after the first
	// takes the key (the name, for Named blobs) of a device created
	// before it, so that several thins share a key and collide in the
	// blob index.
	DuplicateKeys float64
}

// DefaultSpec returns the spec ParseSpec starts from: one thin of 1000
// blocks written in runs of 8 on average, half of its span unmapped, 10%
// rewritten after each snapshot, 64 KiB data blocks, a quarter of the
// data device free; stock format. For an extended pool: 64-byte named
// blobs indexed by their first 32 bytes, mixed ids.
func DefaultSpec() Spec {
	return Spec{
		BlobSize:      DefaultBlobSize,
		IndexBytes:    32,
		IDs:           Mixed,
		Thins:         1,
		Mappings:      Range{1000, 1000},
		MeanRun:       8,
		Sparsity:      0.5,
		Rewrite:       0.1,
		DataBlockSize: 128,
		DataSlack:     0.25,
	}
}

// DefaultBlobSize is the blob size of an extended pool whose Spec says 0.
const DefaultBlobSize = 64

// MaxMappings is the most mappings a pool can hold: every block a full
// metadata space map tracks a full leaf of mappings. A Spec whose thins
// would write more is refused.
const MaxMappings = spacemap.MaxMetadataBlocks * 252

// MaxDevices is the most devices (thins and snapshots) a Spec can create.
const MaxDevices = 1 << 24

// normalize gives the fields whose zero is meaningless their value.
func (s Spec) normalize() Spec {
	if s.Variant == thin.Extended && s.BlobSize == 0 {
		s.BlobSize = DefaultBlobSize
	}
	if s.DataBlockSize == 0 {
		s.DataBlockSize = 128
	}
	if s.MeanRun == 0 {
		s.MeanRun = 1
	}
	return s
}

// ErrSpec means a Spec is not valid.
var ErrSpec = errors.New("invalid generator spec")

// Validate reports the first problem of a Spec.
func (s Spec) Validate() error {
	s = s.normalize()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gen: %w: %s", ErrSpec, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Variant != thin.Stock && s.Variant != thin.Extended:
		return bad("format %v is not supported", s.Variant)
	case s.Thins < 0 || s.Thins == 0 && s.Snapshots > 0:
		return bad("thins %d: snapshots need a thin", s.Thins)
	case s.Variant == thin.Stock && uint64(s.Thins)+uint64(max(s.Snapshots, 0)) > thin.MaxStockDeviceID:
		return bad("%d devices: more than the format's %d ids", s.Thins+s.Snapshots, thin.MaxStockDeviceID)
	case uint64(s.Thins)+uint64(max(s.Snapshots, 0)) > MaxDevices:
		return bad("%d devices: more than the generator's %d", s.Thins+s.Snapshots, MaxDevices)
	case s.Mappings.Min > s.Mappings.Max:
		return bad("mappings %v: minimum above maximum", s.Mappings)
	case s.Mappings.Max > MaxMappings || uint64(max(s.Thins, 1)) > MaxMappings/max(s.Mappings.Max, 1):
		// Checked before anything is planned: the plan is made in memory.
		return bad("%d thins of up to %d mappings: more than the %d a pool can hold", s.Thins, s.Mappings.Max, uint64(MaxMappings))
	case !(s.MeanRun >= 1) || s.MeanRun > 1<<30:
		return bad("run-length %v: must be at least 1", s.MeanRun)
	case !(s.Sparsity >= 0 && s.Sparsity < 1):
		return bad("sparsity %v: must be in [0, 1)", s.Sparsity)
	case s.Snapshots < 0:
		return bad("snapshots %d", s.Snapshots)
	case s.Shape < Chain || s.Shape > Tree:
		return bad("shape %v", s.Shape)
	case !(s.Rewrite >= 0 && s.Rewrite <= 1):
		return bad("rewrite %v: must be in [0, 1]", s.Rewrite)
	case s.Target < Both || s.Target > Snapshot:
		return bad("target %v", s.Target)
	case !(s.Discard >= 0 && s.Discard <= 1):
		return bad("discard %v: must be in [0, 1]", s.Discard)
	case s.Deletions < 0 || s.Deletions > s.Thins+s.Snapshots:
		return bad("deletions %d: the pool has %d devices", s.Deletions, s.Thins+s.Snapshots)
	case !thin.ValidDataBlockSize(s.DataBlockSize):
		return bad("data block size %d: %v", s.DataBlockSize, thin.ErrDataBlockSize)
	case !(s.DataSlack >= 0 && s.DataSlack <= 1000):
		return bad("data slack %v", s.DataSlack)
	case s.NrDataBlocks > thin.MaxDataBlock+1:
		return bad("nr-data-blocks %d: beyond the format's limit", s.NrDataBlocks)
	case s.CommitEvery < 0:
		return bad("commit-every %d", s.CommitEvery)
	}
	if s.Variant != thin.Extended {
		return nil
	}
	switch {
	case s.BlobSize < 1 || s.BlobSize > thin.MaxBlobSize:
		return bad("blob-size %d: must be 1 to %d", s.BlobSize, thin.MaxBlobSize)
	case s.IndexBytes < 0 || s.IndexBytes > s.BlobSize:
		return bad("index-bytes %d: must be 0 to the blob size (%d)", s.IndexBytes, s.BlobSize)
	case s.IDs < Allocate || s.IDs > Mixed:
		return bad("ids %v", s.IDs)
	case s.BlobFill < Named || s.BlobFill > ZeroBlobs:
		return bad("blob-fill %v", s.BlobFill)
	case !(s.DuplicateKeys >= 0 && s.DuplicateKeys <= 1):
		return bad("duplicate-keys %v: must be in [0, 1]", s.DuplicateKeys)
	}
	return nil
}

// Field is one setting of the text form of a Spec: its name (also the
// CLI's option name), a help line, and how to read and write it.
type Field struct {
	Name string
	Help string
	// Bool says the field is a boolean ("true" or "false").
	Bool bool
	// Extended says the field matters only to extended pools (stock
	// pools ignore it).
	Extended bool
	get      func(*Spec) string
	set      func(*Spec, string) error
}

// Get returns the field's value in s, as text.
func (f Field) Get(s *Spec) string { return f.get(s) }

// Set parses v into the field of s.
func (f Field) Set(s *Spec, v string) error {
	if err := f.set(s, v); err != nil {
		return fmt.Errorf("gen: %w: %s=%q: %v", ErrSpec, f.Name, v, err)
	}
	return nil
}

func intField(name, help string, p func(*Spec) *int) Field {
	return Field{name, help, false, false,
		func(s *Spec) string { return strconv.Itoa(*p(s)) },
		func(s *Spec, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err == nil && n < 0 {
				err = errors.New("negative")
			}
			*p(s) = int(n)
			return err
		}}
}

func uintField(name, help string, p func(*Spec) *uint64) Field {
	return Field{name, help, false, false,
		func(s *Spec) string { return strconv.FormatUint(*p(s), 10) },
		func(s *Spec, v string) (err error) {
			*p(s), err = strconv.ParseUint(v, 10, 64)
			return err
		}}
}

func floatField(name, help string, p func(*Spec) *float64) Field {
	return Field{name, help, false, false,
		func(s *Spec) string { return strconv.FormatFloat(*p(s), 'g', -1, 64) },
		func(s *Spec, v string) (err error) {
			*p(s), err = strconv.ParseFloat(v, 64)
			return err
		}}
}

func boolField(name, help string, p func(*Spec) *bool) Field {
	return Field{name, help, true, false,
		func(s *Spec) string { return strconv.FormatBool(*p(s)) },
		func(s *Spec, v string) (err error) {
			*p(s), err = strconv.ParseBool(v)
			return err
		}}
}

func enumField(name, help string, names []string, p func(*Spec) *int) Field {
	return Field{name, help + " (" + strings.Join(names, ", ") + ")", false, false,
		func(s *Spec) string {
			if i := *p(s); i >= 0 && i < len(names) {
				return names[i]
			}
			return strconv.Itoa(*p(s))
		},
		func(s *Spec, v string) error {
			for i, n := range names {
				if n == v {
					*p(s) = i
					return nil
				}
			}
			return errors.New("unknown value")
		}}
}

// extended marks a field as one only extended pools use.
func extended(f Field) Field {
	f.Extended = true
	return f
}

// Fields lists the settings of the text form, in the order String writes
// them.
func Fields() []Field {
	return []Field{
		enumField("metadata-format", "metadata format variant", variantNames, func(s *Spec) *int { return (*int)(&s.Variant) }),
		intField("thins", "thin devices created and written", func(s *Spec) *int { return &s.Thins }),
		{"mappings", "blocks written to each thin: N or MIN-MAX", false, false,
			func(s *Spec) string { return s.Mappings.String() },
			func(s *Spec, v string) error {
				lo, hi, ok := strings.Cut(v, "-")
				if !ok {
					hi = lo
				}
				a, err := strconv.ParseUint(lo, 10, 64)
				if err != nil {
					return err
				}
				b, err := strconv.ParseUint(hi, 10, 64)
				s.Mappings = Range{a, b}
				return err
			}},
		floatField("run-length", "mean run of consecutive blocks written together", func(s *Spec) *float64 { return &s.MeanRun }),
		floatField("sparsity", "fraction of each thin's span left unmapped, in [0, 1)", func(s *Spec) *float64 { return &s.Sparsity }),
		intField("snapshots", "thin snapshots taken", func(s *Spec) *int { return &s.Snapshots }),
		enumField("shape", "shape of the snapshot tree", shapeNames, func(s *Spec) *int { return (*int)(&s.Shape) }),
		floatField("rewrite", "fraction of mapped blocks rewritten after each snapshot", func(s *Spec) *float64 { return &s.Rewrite }),
		enumField("target", "side of each snapshot rewritten", targetNames, func(s *Spec) *int { return (*int)(&s.Target) }),
		floatField("discard", "fraction of each device's mapped blocks unmapped", func(s *Spec) *float64 { return &s.Discard }),
		intField("deletions", "devices deleted", func(s *Spec) *int { return &s.Deletions }),
		boolField("metadata-snap", "after the deletions reserve a metadata snapshot, then rewrite blocks of one device (--rewrite of them, at least one) so the live pool differs from it", func(s *Spec) *bool { return &s.MetadataSnapshot }),
		{"data-block-size", "data block size in 512-byte sectors", false, false,
			func(s *Spec) string { return strconv.FormatUint(uint64(s.DataBlockSize), 10) },
			func(s *Spec, v string) error {
				n, err := strconv.ParseUint(v, 10, 32)
				s.DataBlockSize = uint32(n)
				return err
			}},
		uintField("nr-data-blocks", "data device size in data blocks (0: what is needed plus data-slack)", func(s *Spec) *uint64 { return &s.NrDataBlocks }),
		floatField("data-slack", "free fraction added to the data device when it is sized", func(s *Spec) *float64 { return &s.DataSlack }),
		uintField("metadata-blocks", "metadata device size in 4 KiB blocks (0: estimated)", func(s *Spec) *uint64 { return &s.MetadataBlocks }),
		intField("commit-every", "commit after this many writes within a phase (0: once per phase)", func(s *Spec) *int { return &s.CommitEvery }),
		boolField("bulk", "write the thins' initial mappings with the bulk builder", func(s *Spec) *bool { return &s.Bulk }),
		extended(intField("blob-size", "extended: blob bytes per thin (0: 64)", func(s *Spec) *int { return &s.BlobSize })),
		extended(intField("index-bytes", "extended: leading blob bytes the blob index keys on (0: no index)", func(s *Spec) *int { return &s.IndexBytes })),
		extended(enumField("ids", "extended: device ids: handed out by the pool, 0, 1, ... (allocate), chosen above 2^32 with random gaps up to near 2^64 (wide), or either (mixed)", idsNames, func(s *Spec) *int { return (*int)(&s.IDs) })),
		extended(enumField("blob-fill", "extended: blob contents: \"thin-<id>\" padded with zeros to the index width, then pseudo-random bytes (named); pseudo-random (random); zeros (zero)", fillNames, func(s *Spec) *int { return (*int)(&s.BlobFill) })),
		extended(floatField("duplicate-keys", "extended: probability a device takes an earlier device's key (name)", func(s *Spec) *float64 { return &s.DuplicateKeys })),
	}
}

// String returns the text form of s: space-separated name=value settings,
// every field, in Fields order. ParseSpec reads it back.
func (s Spec) String() string {
	var b strings.Builder
	for i, f := range Fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Get(&s))
	}
	return b.String()
}

// ParseSpec reads the text form of a Spec: whitespace-separated
// name=value settings (names as in Fields) applied to DefaultSpec().
func ParseSpec(text string) (Spec, error) {
	s := DefaultSpec()
	fields := Fields()
	for _, kv := range strings.Fields(text) {
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			return s, fmt.Errorf("gen: %w: %q is not name=value", ErrSpec, kv)
		}
		found := false
		for _, f := range fields {
			if f.Name == name {
				if err := f.Set(&s, v); err != nil {
					return s, err
				}
				found = true
				break
			}
		}
		if !found {
			return s, fmt.Errorf("gen: %w: unknown setting %q", ErrSpec, name)
		}
	}
	return s, nil
}
