package repair

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report says what a salvage found, kept, took from older copies, dropped
// and inferred. It marshals to JSON (thinmeta repair --report) and prints
// as text (WriteText).
type Report struct {
	// MetadataBlocks is the size of the input in 4 KiB blocks.
	MetadataBlocks uint64 `json:"metadata_blocks"`
	// Superblock says what block 0 held and where the pool's fields came
	// from.
	Superblock SuperblockReport `json:"superblock"`
	// Scan is filled when the whole device had to be scanned for older
	// copies (nil when the newest metadata was enough).
	Scan *ScanReport `json:"scan,omitempty"`
	// Pool is what the salvaged pool's superblock records.
	Pool PoolReport `json:"pool"`
	// Inferred lists the pool fields not taken from a valid superblock.
	Inferred []Inference `json:"inferred,omitempty"`
	// Devices are the salvaged devices, in id order.
	Devices []DeviceReport `json:"devices"`
	// LostDevices are devices of the newest metadata that could not be
	// salvaged, and devices found only in older copies that were not
	// brought back.
	LostDevices []LostDevice `json:"lost_devices,omitempty"`
	// Notes are other things worth knowing (a metadata snapshot dropped,
	// space-map damage that the rebuild fixed, ...).
	Notes []string `json:"notes,omitempty"`
	// Totals add up the devices.
	Totals Totals `json:"totals"`
}

// SuperblockReport describes block 0 of the input.
type SuperblockReport struct {
	// State is "valid", "damaged" or "missing".
	State string `json:"state"`
	// Problem says what is wrong with a damaged or missing superblock.
	Problem string `json:"problem,omitempty"`
	// MappingRoot and DetailsRoot are the roots the salvage started from.
	MappingRoot uint64 `json:"mapping_root"`
	DetailsRoot uint64 `json:"details_root"`
	// From says where they came from ("superblock", or how they were
	// found).
	From string `json:"from"`
}

// ScanReport counts the blocks of the input by what they hold.
type ScanReport struct {
	Superblocks int `json:"superblocks"`
	Nodes       int `json:"nodes"`
	Unsorted    int `json:"unsorted_nodes"` // valid checksum, keys out of order
	BadNodes    int `json:"bad_nodes"`      // node checksum, but wrong location or header
	Bitmaps     int `json:"bitmaps"`
	Indexes     int `json:"indexes"`
	Other       int `json:"other"` // zero, unknown or damaged
	// Versions is the number of older copies of device trees considered.
	Versions int `json:"versions"`
}

// PoolReport is what the salvaged pool's superblock records.
type PoolReport struct {
	Time          uint32 `json:"time"`
	TransactionID uint64 `json:"transaction_id"`
	DataBlockSize uint32 `json:"data_block_size"`
	NrDataBlocks  uint64 `json:"nr_data_blocks"`
	Extended      bool   `json:"extended,omitempty"`
	BlobSize      int    `json:"blob_size,omitempty"`
	IndexBytes    int    `json:"index_bytes,omitempty"`
	NextThinID    uint64 `json:"next_thin_id,omitempty"`
}

// Inference is one pool field not read from a valid superblock.
type Inference struct {
	Field string `json:"field"`
	Value uint64 `json:"value"`
	From  string `json:"from"`
}

// DeviceReport is what happened to one device.
type DeviceReport struct {
	ID uint64 `json:"id"`
	// Details are the salvaged device's details (mapped_blocks recounted).
	Details Details `json:"details"`
	// DetailsFrom says where the details came from: "newest", an older
	// copy, or "reconstructed".
	DetailsFrom string `json:"details_from"`
	// Kept counts the mappings kept from the newest metadata.
	Kept uint64 `json:"kept"`
	// Older are the mappings taken from older copies of the metadata, as
	// runs; OlderCount counts them.
	Older      []OlderRun `json:"older,omitempty"`
	OlderCount uint64     `json:"older_count"`
	// Dropped are mappings found but not kept, with why; DroppedCount
	// counts them.
	Dropped      []DroppedRun `json:"dropped,omitempty"`
	DroppedCount uint64       `json:"dropped_count"`
	// Damaged are the key ranges of damaged nodes of the device's newest
	// tree. Mappings there were recovered only as far as older copies
	// hold them (Older); any made after the newest older copy are lost.
	Damaged []DamagedRange `json:"damaged,omitempty"`
	// Fixes are repairs that lost nothing (a leaf's entries sorted, a
	// mapped_blocks recounted, ...).
	Fixes []string `json:"fixes,omitempty"`
}

// Details mirrors thin.Details with JSON names.
type Details struct {
	MappedBlocks    uint64 `json:"mapped_blocks"`
	TransactionID   uint64 `json:"transaction_id"`
	CreationTime    uint32 `json:"creation_time"`
	SnapshottedTime uint32 `json:"snapshotted_time"`
}

// OlderRun is a run of mappings taken from an older copy: virtual blocks
// VBlock.. mapped to data blocks Block.. at Time.
type OlderRun struct {
	VBlock uint64 `json:"vblock"`
	Block  uint64 `json:"block"`
	Len    uint64 `json:"len"`
	Time   uint32 `json:"time"`
	// Source names the older copy (a tree root or node block).
	Source string `json:"source"`
	// Transaction is the copy's transaction id, when known.
	Transaction *uint64 `json:"transaction,omitempty"`
	// Confirmed says the newest data space map shows the damaged node
	// referenced these data blocks; false means it could not tell.
	Confirmed bool `json:"confirmed"`
}

// DroppedRun is a run of mappings that was found but not kept.
type DroppedRun struct {
	VBlock uint64 `json:"vblock"`
	Block  uint64 `json:"block"`
	Len    uint64 `json:"len"`
	Time   uint32 `json:"time"`
	Reason string `json:"reason"`
	// Owner is the device the newest metadata gives the data blocks to,
	// when that is the reason.
	Owner *uint64 `json:"owner,omitempty"`
	// Source names where the mapping was found.
	Source string `json:"source"`
}

// DamagedRange is the key range [First, Last] of a damaged node Block
// (0 for a device whose whole tree is missing), with why it could not be
// used and how many mappings older copies gave back for it.
type DamagedRange struct {
	First     uint64 `json:"first"`
	Last      uint64 `json:"last"`
	Block     uint64 `json:"block"`
	Reason    string `json:"reason"`
	Recovered uint64 `json:"recovered"`
	// Versions is the number of older copies considered.
	Versions int `json:"versions"`
}

// LostDevice is a device that was not salvaged.
type LostDevice struct {
	ID     uint64 `json:"id"`
	Reason string `json:"reason"`
}

// Totals add up the devices of a report.
type Totals struct {
	Devices     int    `json:"devices"`
	Kept        uint64 `json:"kept"`
	Older       uint64 `json:"older"`
	Dropped     uint64 `json:"dropped"`
	Damaged     int    `json:"damaged_ranges"`
	LostDevices int    `json:"lost_devices"`
}

// Clean reports whether nothing was lost, dropped, taken from an older
// copy or inferred: the salvaged pool holds exactly the newest metadata's
// mappings.
func (r *Report) Clean() bool {
	return r.Totals.Older == 0 && r.Totals.Dropped == 0 && r.Totals.Damaged == 0 &&
		r.Totals.LostDevices == 0 && len(r.Inferred) == 0 && r.Superblock.State == "valid"
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// maxListed bounds the runs listed per device and category in the text
// form; the JSON form lists all.
const maxListed = 10

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	sb := r.Superblock
	fmt.Fprintf(bw, "input: %d metadata blocks; superblock %s", r.MetadataBlocks, sb.State)
	if sb.Problem != "" {
		fmt.Fprintf(bw, " (%s)", sb.Problem)
	}
	fmt.Fprintf(bw, "; roots from %s (mapping %d, details %d)\n", sb.From, sb.MappingRoot, sb.DetailsRoot)
	if s := r.Scan; s != nil {
		fmt.Fprintf(bw, "scanned: %d superblocks, %d nodes (%d with keys out of order, %d bad), %d bitmaps, %d index blocks, %d other; %d older versions of device trees\n",
			s.Superblocks, s.Nodes, s.Unsorted, s.BadNodes, s.Bitmaps, s.Indexes, s.Other, s.Versions)
	}
	p := r.Pool
	fmt.Fprintf(bw, "pool: time %d, transaction %d, data block size %d, %d data blocks", p.Time, p.TransactionID, p.DataBlockSize, p.NrDataBlocks)
	if p.Extended {
		fmt.Fprintf(bw, ", extended (blob size %d, index bytes %d, next id %d)", p.BlobSize, p.IndexBytes, p.NextThinID)
	}
	bw.WriteString("\n")
	for _, in := range r.Inferred {
		fmt.Fprintf(bw, "inferred %s = %d (%s)\n", in.Field, in.Value, in.From)
	}
	for _, d := range r.Devices {
		fmt.Fprintf(bw, "device %d: %d mappings kept", d.ID, d.Kept)
		if d.OlderCount > 0 {
			fmt.Fprintf(bw, ", %d from older copies", d.OlderCount)
		}
		if d.DroppedCount > 0 {
			fmt.Fprintf(bw, ", %d dropped", d.DroppedCount)
		}
		if len(d.Damaged) > 0 {
			fmt.Fprintf(bw, ", %d damaged ranges", len(d.Damaged))
		}
		if d.DetailsFrom != "newest" {
			fmt.Fprintf(bw, "; details %s", d.DetailsFrom)
		}
		bw.WriteString("\n")
		for _, f := range d.Fixes {
			fmt.Fprintf(bw, "  fixed: %s\n", f)
		}
		for i, o := range d.Older {
			if i == maxListed {
				fmt.Fprintf(bw, "  ... %d more runs from older copies\n", len(d.Older)-i)
				break
			}
			conf := "confirmed by the data space map"
			if !o.Confirmed {
				conf = "unconfirmed"
			}
			fmt.Fprintf(bw, "  older: %s from %s%s (%s)\n", runText(o.VBlock, o.Block, o.Len, o.Time), o.Source, txText(o.Transaction), conf)
		}
		for i, x := range d.Dropped {
			if i == maxListed {
				fmt.Fprintf(bw, "  ... %d more dropped runs\n", len(d.Dropped)-i)
				break
			}
			fmt.Fprintf(bw, "  dropped: %s from %s: %s\n", runText(x.VBlock, x.Block, x.Len, x.Time), x.Source, x.Reason)
		}
		for i, l := range d.Damaged {
			if i == maxListed {
				fmt.Fprintf(bw, "  ... %d more damaged ranges\n", len(d.Damaged)-i)
				break
			}
			fmt.Fprintf(bw, "  damaged: virtual blocks %d..%d (node %d: %s): %d mappings recovered from %d older copies; later ones lost\n",
				l.First, l.Last, l.Block, l.Reason, l.Recovered, l.Versions)
		}
	}
	for _, l := range r.LostDevices {
		fmt.Fprintf(bw, "device %d lost: %s\n", l.ID, l.Reason)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	t := r.Totals
	fmt.Fprintf(bw, "total: %d devices, %d mappings kept, %d from older copies, %d dropped, %d damaged ranges, %d devices lost\n",
		t.Devices, t.Kept, t.Older, t.Dropped, t.Damaged, t.LostDevices)
	return bw.Flush()
}

func runText(v, b, n uint64, t uint32) string {
	if n == 1 {
		return fmt.Sprintf("virtual block %d -> data block %d (time %d)", v, b, t)
	}
	return fmt.Sprintf("virtual blocks %d..%d -> data blocks %d..%d (time %d)", v, v+n-1, b, b+n-1, t)
}

func txText(t *uint64) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf(" (transaction %d)", *t)
}

// String summarises the report on one line.
func (r *Report) String() string {
	var b strings.Builder
	t := r.Totals
	fmt.Fprintf(&b, "%d devices, %d mappings kept, %d from older copies, %d dropped, %d damaged ranges, %d devices lost",
		t.Devices, t.Kept, t.Older, t.Dropped, t.Damaged, t.LostDevices)
	return b.String()
}
