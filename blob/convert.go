package blob

import (
	"fmt"
	"slices"

	"github.com/thinmeta/thinmeta/thin"
)

// Renumbered records a thin whose id Downgrade changed.
type Renumbered struct {
	Old, New uint64
}

// Upgrade converts the stock pool md to the extended format, with blobs of
// blobSize bytes (at least 1; all zero) and, if indexBytes > 0, an index of the first
// indexBytes bytes of each blob, and commits. Every thin keeps its id, its
// details and its mappings, shared as before; the next id is one above
// the largest, and the thin count is the number of thins. Changes pending
// in md are committed with the conversion. A held metadata snapshot
// refuses the upgrade (release it first). On error nothing is changed.
func Upgrade(md *thin.Metadata, blobSize, indexBytes int) error {
	if md.Variant() == thin.Extended {
		return fmt.Errorf("%w: the pool is of the extended format already", thin.ErrConvert)
	}
	err := md.Convert(thin.ConvertOptions{Variant: thin.Extended, BlobSize: blobSize, IndexBytes: indexBytes})
	if err == nil {
		err = md.Commit()
	}
	if err != nil {
		md.Abort()
		return err
	}
	return nil
}

// Downgrade converts the extended pool md to the stock format, which the
// kernel and thin-provisioning-tools accept, and commits: blobs, the index
// and the extended superblock fields are dropped; mappings, sharing and
// details are kept. Stock ids have 24 bits: a thin with a larger id
// refuses the downgrade (thin.ErrIDRange), unless renumber is set: then
// each such thin, in id order, takes the lowest id no thin has, and the
// changes are returned (thins that fit keep their ids). Changes pending in
// md are committed with the conversion. A held metadata snapshot refuses
// the downgrade. On error nothing is changed.
func Downgrade(md *thin.Metadata, renumber bool) ([]Renumbered, error) {
	if md.Variant() != thin.Extended {
		return nil, fmt.Errorf("%w: %w", thin.ErrConvert, ErrNotExtended)
	}
	changes, err := downgrade(md, renumber)
	if err == nil {
		err = md.Commit()
	}
	if err != nil {
		md.Abort()
		return nil, err
	}
	return changes, nil
}

func downgrade(md *thin.Metadata, renumber bool) ([]Renumbered, error) {
	// The top level of the mapping tree lists every thin of this
	// transaction (the details of new ones may not be in their tree yet).
	var ids []uint64
	for dr, err := range md.View().DeviceRoots() {
		if err != nil {
			return nil, err
		}
		ids = append(ids, dr.ID)
	}
	if len(ids) > thin.MaxStockDeviceID+1 {
		return nil, fmt.Errorf("%d thins, the stock format has ids for %d: %w", len(ids), thin.MaxStockDeviceID+1, thin.ErrIDRange)
	}
	var changes []Renumbered
	// ids is sorted: the ones that fit come first.
	big, _ := slices.BinarySearch(ids, thin.MaxStockDeviceID+1)
	if big < len(ids) {
		if !renumber {
			return nil, fmt.Errorf("thin %d: %w (the stock format allows ids up to %d; renumber to downgrade)",
				ids[big], thin.ErrIDRange, thin.MaxStockDeviceID)
		}
		next, kept := uint64(0), ids[:big]
		for _, old := range ids[big:] {
			for len(kept) > 0 && kept[0] <= next {
				if kept[0] == next {
					next++
				}
				kept = kept[1:]
			}
			changes = append(changes, Renumbered{Old: old, New: next})
			next++
		}
	}
	newIDs := make(map[uint64]uint64, len(changes))
	for _, c := range changes {
		newIDs[c.Old] = c.New
	}
	return changes, md.Convert(thin.ConvertOptions{NewIDs: newIDs})
}
