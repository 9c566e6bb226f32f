package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Salts of the extended format's random streams: ids and duplicate keys
// come from one stream, each blob's key and tail from streams of their
// own, all apart from the stream that decides the pool's shape (so an
// extended pool has the shape of the stock pool of the same seed).
const (
	idSalt   = 0x7468696e69647331 // "thinids1"
	keySalt  = 0x7468696e6b657931 // "thinkey1"
	tailSalt = 0x7468696e74616c31 // "thintal1"
)

// extPlan is the extended-format part of a plan: each device's id and
// where its key comes from. Devices are numbered by the plan 1, 2, ... in
// creation order (the stock ids); index k-1 holds device k's.
type extPlan struct {
	ids       []uint64
	allocated []bool
	// keyFrom maps a device that takes another's key to that device.
	keyFrom map[uint64]uint64
}

// planExtended decides the ids and the shared keys of n devices.
func (pl *planner) planExtended(n int) {
	s := pl.s
	rng := rand.New(rand.NewPCG(pl.p.seed, idSalt))
	e := &extPlan{ids: make([]uint64, n), allocated: make([]bool, n), keyFrom: make(map[uint64]uint64)}
	// Chosen ids lie above 2^32, each a random gap of less than step
	// above the id before: n gaps fit below 2^64-1 (which the pool
	// refuses, its next id would wrap).
	const base = 1 << 32
	step := (math.MaxUint64 - 1 - base) / uint64(n+1)
	next := uint64(0)
	for i := range n {
		choose := s.IDs == Wide || s.IDs == Mixed && (i == 0 || rng.IntN(2) == 0)
		id := next
		if choose {
			id = max(next, base) + 1 + rng.Uint64N(step)
		}
		e.ids[i], e.allocated[i] = id, !choose
		next = id + 1
	}
	for k := uint64(2); k <= uint64(n); k++ {
		if rng.Float64() < s.DuplicateKeys {
			src := 1 + rng.Uint64N(k-1)
			if from, ok := e.keyFrom[src]; ok {
				src = from
			}
			e.keyFrom[k] = src
		}
	}
	pl.p.ext = e
}

// id returns the pool id of plan device k.
func (p *Plan) id(k uint64) uint64 {
	if p.ext == nil {
		return k
	}
	return p.ext.ids[k-1]
}

// keyWidth is the width of a blob's key: the index's, or the whole blob.
func (s Spec) keyWidth() int {
	if s.IndexBytes > 0 {
		return s.IndexBytes
	}
	return s.BlobSize
}

// blob returns the blob plan device k is created with.
func (p *Plan) blob(k uint64) []byte {
	s := p.spec
	b := make([]byte, s.BlobSize)
	w := s.keyWidth()
	src := k
	if from, ok := p.ext.keyFrom[k]; ok {
		src = from
	}
	switch s.BlobFill {
	case Named:
		copy(b[:w], Name(p.id(src)))
	case RandomBlobs:
		fill(b[:w], rand.NewPCG(p.seed^keySalt, src))
	}
	if s.BlobFill != ZeroBlobs {
		fill(b[w:], rand.NewPCG(p.seed^tailSalt, k))
	}
	return b
}

// Name returns the name a Named blob gives thin id: "thin-<id>".
func Name(id uint64) string { return "thin-" + strconv.FormatUint(id, 10) }

func fill(b []byte, src rand.Source) {
	for i := 0; i < len(b); i += 8 {
		v := src.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}

// extendedMetadata returns the metadata blocks an extended pool needs
// beyond a stock one: the details tree's larger leaves and the blob index,
// each shadowed by every message.
func (pl *planner) extendedMetadata() uint64 {
	s := pl.s
	n := uint64(s.Thins + s.Snapshots)
	perLeaf := uint64((4096 - 32) / (8 + 24 + s.BlobSize))
	leaves := 2*n/perLeaf + 1
	if s.IndexBytes > 0 {
		leaves += 2*n/((4096-32)/(8+16)) + 1
	}
	return 2*leaves + 16
}
