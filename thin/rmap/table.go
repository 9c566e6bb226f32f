package rmap

import "math"

// rec is an Entry as Map keeps it: 24 bytes instead of 32, the run's
// length in 32 bits (a longer run's length is kept in table.long).
type rec struct {
	data, thin uint64
	dev        uint32
	n          uint32 // DataEnd - DataBegin, or longRun
}

// longRun in rec.n says the run's length is in table.long.
const longRun = math.MaxUint32

// longKey names a run: no device maps a virtual block twice, so a device
// and a first virtual block are unique; the first data block is kept too
// for the check in length.
type longKey struct {
	data, thin uint64
	dev        uint32
}

// chunkBits sets the table's chunk size (2^chunkBits records, 384 KiB);
// a variable so that the tests can make chunks tiny.
var chunkBits uint = 14

// A table holds the entries Map collects, in chunks that are never copied
// as it grows (a slice grown by append holds up to three times its
// contents during a copy), sorted where they are.
type table struct {
	chunks [][]rec
	n      int
	bits   uint
	mask   int
	tmp    rec // the value libstdc++'s sort holds in a local variable
	long   map[longKey]uint64
}

func newTable() *table {
	return &table{bits: chunkBits, mask: 1<<chunkBits - 1}
}

func (t *table) at(i int) *rec { return &t.chunks[i>>t.bits][i&t.mask] }

// add appends an entry.
func (t *table) add(e Entry) {
	if t.n&t.mask == 0 {
		t.chunks = append(t.chunks, make([]rec, t.mask+1))
	}
	r := rec{data: e.DataBegin, thin: e.ThinBegin, dev: e.Dev}
	if n := e.DataEnd - e.DataBegin; n < longRun {
		r.n = uint32(n)
	} else {
		r.n = longRun
		if t.long == nil {
			t.long = make(map[longKey]uint64)
		}
		t.long[longKey{e.DataBegin, e.ThinBegin, e.Dev}] = n
	}
	*t.at(t.n) = r
	t.n++
}

// entry returns the i'th entry.
func (t *table) entry(i int) Entry {
	r := t.at(i)
	n := uint64(r.n)
	if r.n == longRun {
		n = t.long[longKey{r.data, r.thin, r.dev}]
	}
	return Entry{DataBegin: r.data, DataEnd: r.data + n, Dev: r.dev, ThinBegin: r.thin}
}
