package dump

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// Mappings are formatted into chunks of about chunkSize bytes; a device
// being formatted ahead of the one being written may hold up to
// chunksAhead chunks before it waits.
const (
	chunkSize   = 256 << 10
	chunksAhead = 4
	// readAheadBlocks bounds the reads of a device's tree: thin_restore
	// and the kernel often place a tree's nodes in long runs of blocks.
	readAheadBlocks = 256
)

// job is the formatting of one device's mappings: a worker sends the
// formatted chunks in order on chunks, then sets err and closes chunks.
type job struct {
	device
	chunks chan []byte
	err    error
}

// dumpDevices writes the devices and their mappings in order. The mappings
// of several devices are formatted concurrently (one goroutine per CPU, each
// on one device at a time) while the writer copies the chunks of the
// earliest unfinished device to bw, so the output is the same as a
// sequential dump, including when a device's tree is damaged: everything
// before the damage is written, then the device is closed and the error
// returned.
func dumpDevices(bw *bufio.Writer, e emitter, p *thin.Pool, devs []device) error {
	workers := min(runtime.GOMAXPROCS(0), len(devs))
	if workers <= 1 {
		buf := make([]byte, 0, chunkSize+512)
		ra := transaction.NewReadAhead(p.Reader(), readAheadBlocks)
		for _, d := range devs {
			e.beginDevice(bw, d.ID, d.Details, d.Blob)
			f := formatter{e: e, buf: buf, reuse: true, ra: ra, emit: func(b []byte) bool {
				bw.Write(b)
				return true
			}}
			err := f.device(p, d.Root)
			e.endDevice(bw)
			if err != nil {
				return fmt.Errorf("thinmeta: device %d: %w", d.ID, err)
			}
		}
		return nil
	}

	jobs := make([]*job, len(devs))
	for i, d := range devs {
		jobs[i] = &job{device: d, chunks: make(chan []byte, chunksAhead)}
	}
	done := make(chan struct{})
	free := make(chan []byte, workers*(chunksAhead+2))
	next := make(chan *job)
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // hand out the jobs in order
		defer wg.Done()
		defer close(next)
		for _, j := range jobs {
			select {
			case next <- j:
			case <-done:
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ra := transaction.NewReadAhead(p.Reader(), readAheadBlocks)
			for j := range next {
				f := formatter{e: e, free: free, ra: ra, emit: func(b []byte) bool {
					select {
					case j.chunks <- b:
						return true
					case <-done:
						return false
					}
				}}
				j.err = f.device(p, j.Root)
				close(j.chunks)
			}
		}()
	}
	for _, j := range jobs {
		e.beginDevice(bw, j.ID, j.Details, j.Blob)
		for b := range j.chunks {
			bw.Write(b)
			select {
			case free <- b[:0]:
			default:
			}
		}
		e.endDevice(bw)
		if j.err != nil {
			return fmt.Errorf("thinmeta: device %d: %w", j.ID, j.err)
		}
	}
	return nil
}

// formatter formats one device's mappings, merged into runs as thin_dump
// merges them, and hands the text on in chunks.
type formatter struct {
	e    emitter
	buf  []byte
	free chan []byte         // recycled chunks, if not nil
	emit func(b []byte) bool // false: stop, the dump is abandoned
	// reuse: emit is done with b when it returns, so buf can be reused.
	reuse bool
	run   thin.Run
	ra    *transaction.ReadAhead // one per goroutine, kept across devices
}

// errAbandoned stops a walk whose output is no longer wanted.
var errAbandoned = errors.New("dump abandoned")

// device formats the mappings of the device tree at root. On damage it
// first emits the mappings read before it, as a sequential walk would.
func (f *formatter) device(p *thin.Pool, root uint64) error {
	if f.buf == nil {
		f.buf = f.chunk()
	}
	t := p.DeviceTree(root)
	if f.ra == nil {
		f.ra = transaction.NewReadAhead(p.Reader(), readAheadBlocks)
	}
	t.R = f.ra
	err := t.WalkLeaves(0, math.MaxUint64, f.leaf)
	if err == errAbandoned {
		return nil
	}
	if f.run.Len > 0 {
		f.buf = f.e.run(f.buf, f.run)
		f.run = thin.Run{}
	}
	if len(f.buf) > 0 {
		f.emit(f.buf)
	}
	f.buf = f.buf[:0]
	if !f.reuse {
		f.buf = nil
	}
	return err
}

func (f *formatter) chunk() []byte {
	select {
	case b := <-f.free:
		return b
	default:
		return make([]byte, 0, chunkSize+512)
	}
}

// leaf formats the entries of one leaf of a device's mapping tree.
func (f *formatter) leaf(_ uint64, n btree.Node) error {
	r := f.run
	nr := n.NrEntries()
	for i := range nr {
		v, t := thin.UnpackBlockTime(n.Uint64Value(i))
		k := n.Key(i)
		if r.Len > 0 && k == r.VBlock+r.Len && v == r.Block+r.Len && t == r.Time {
			r.Len++
			continue
		}
		if r.Len > 0 {
			f.buf = f.e.run(f.buf, r)
		}
		r = thin.Run{VBlock: k, Block: v, Len: 1, Time: t}
	}
	f.run = r
	if len(f.buf) >= chunkSize {
		if !f.emit(f.buf) {
			return errAbandoned
		}
		if f.reuse {
			f.buf = f.buf[:0]
		} else {
			f.buf = f.chunk()
		}
	}
	return nil
}
