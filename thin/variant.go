package thin

import (
	"fmt"
	"strconv"

	"github.com/thinmeta/thinmeta/superblock"
)

// Variant is a variant of the metadata format. Variants are ordered: each
// adds to the one before.
type Variant int

const (
	// Stock is the kernel's format, as dm-thin-pool and
	// thin-provisioning-tools write it (superblock version 2, which adds
	// the needs_check flag to version 1): 24-bit thin ids, 24-byte device
	// details.
	Stock Variant = iota
	// Extended adds a fixed-size blob to every thin's details, 64-bit
	// thin ids that are never reused, and an optional index of the thins
	// by the leading bytes of their blobs (docs/EXTENSION.md; package
	// blob). It sets an incompatible feature bit, so stock kernels and
	// tools refuse it cleanly.
	Extended
)

var variantNames = []string{"stock", "extended"}

// String returns the variant's name: "stock" or "extended".
func (v Variant) String() string {
	if v >= 0 && int(v) < len(variantNames) {
		return variantNames[v]
	}
	return "variant(" + strconv.Itoa(int(v)) + ")"
}

// ParseVariant parses a variant's name.
func ParseVariant(s string) (Variant, error) {
	for i, n := range variantNames {
		if s == n {
			return Variant(i), nil
		}
	}
	return 0, fmt.Errorf("unknown metadata format %q (stock or extended)", s)
}

// knownIncompat lists the incompatible feature bits package thin
// understands: the extended format's.
const knownIncompat = superblock.IncompatBlobs

// variantOf returns the variant of a superblock.
func variantOf(sb *superblock.Superblock) Variant {
	if sb.Extended() {
		return Extended
	}
	return Stock
}

// checkVariant vets the blob settings of a variant.
func checkVariant(v Variant, blobSize, indexBytes int) error {
	switch v {
	case Stock:
		if blobSize != 0 || indexBytes != 0 {
			return fmt.Errorf("blobs need the extended format: %w", ErrNotExtended)
		}
	case Extended:
		if blobSize < 1 || blobSize > MaxBlobSize {
			// A blob size of 0 would make 24-byte details that look stock
			// to tools that ignore the incompat bit (thin_check 0.9.0
			// accepts it, thin_dump truncates its ids).
			return fmt.Errorf("%w: blobs of %d bytes, where an extended pool's blobs have 1 to %d", ErrBlobSize, blobSize, MaxBlobSize)
		}
		if indexBytes < 0 || indexBytes > blobSize {
			return fmt.Errorf("%w: an index of %d bytes is wider than the %d-byte blobs it indexes", ErrBlobSize, indexBytes, blobSize)
		}
	default:
		return fmt.Errorf("unknown format %v", v)
	}
	return nil
}
