package walk

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/thin"
)

// walker returns a walk of the tree at root with the checks of
// thin-provisioning-tools' B-tree walks (btree.ToolConventions): a
// capacity divisible by three, and every node but the root at least a
// third full.
func walker(r btree.BlockReader, root uint64, valueSize int) *btree.Walker {
	w := &btree.Walker{R: r, ValueSize: valueSize, Conventions: btree.ToolConventions}
	w.Reset(root)
	return w
}

// leaves calls fn for every leaf of w's walk; fn may return btree.ErrStop
// to end it early without error.
func leaves(w *btree.Walker, fn func(b uint64, n btree.Node) error) error {
	for {
		b, n, _, ok := w.Next()
		if !ok {
			return w.Err()
		}
		if !n.IsLeaf() {
			continue
		}
		if err := fn(b, n); err != nil {
			if err == btree.ErrStop {
				return nil
			}
			return err
		}
	}
}

// Mappings calls fn for every leaf of the mapping tree of one device whose
// root is root, in key order, with the leaf's block number. fn may return
// btree.ErrStop to end the walk early. Damage ends the walk with a
// *transaction.CorruptError.
func Mappings(r btree.BlockReader, root uint64, fn func(b uint64, l Leaf) error) error {
	return leaves(walker(r, root, thin.MappingValueSize), func(b uint64, n btree.Node) error { return fn(b, leafOf(n)) })
}

// Details returns every device of p's device-details tree in id order.
func Details(p *thin.Pool) ([]thin.Device, error) {
	var devs []thin.Device
	t := p.DetailsTree()
	err := leaves(walker(t.R, t.Root, t.ValueSize), func(_ uint64, n btree.Node) error {
		for i := range n.NrEntries() {
			devs = append(devs, thin.Device{ID: n.Key(i), Details: thin.DecodeDetails(n.Value(i))})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return devs, nil
}

// Workers returns how many goroutines to walk n devices with: the
// requested number, or GOMAXPROCS when want is 0, and never more than n.
func Workers(want, n int) int {
	if want <= 0 {
		want = runtime.GOMAXPROCS(0)
	}
	return max(1, min(want, n))
}

// Parallel calls fn(w, i) for every i in order, on workers goroutines
// numbered w = 0..workers-1, handing out the items in the given order.
// After an error no new item starts; Parallel returns the error of the
// item that comes first in order, so the result does not depend on
// scheduling when several items fail.
func Parallel(order []int, workers int, fn func(w, i int) error) error {
	if workers <= 1 {
		for _, i := range order {
			if err := fn(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  = math.MaxInt
		ferr   error
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				k := int(next.Add(1) - 1)
				if k >= len(order) {
					return
				}
				if err := fn(w, order[k]); err != nil {
					mu.Lock()
					if k < first {
						first, ferr = k, err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}
