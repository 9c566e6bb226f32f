package rmap

// thin_rmap orders its regions with an unstable sort by first data block,
// so regions of different devices that start at the same data block come
// out in the order GCC's std::sort leaves them. table.sort reproduces that
// order: it is the introsort of libstdc++ (median-of-three quicksort down
// to runs of 16, heapsort past a depth of 2*log2(n), then one insertion
// sort), step for step, so that equal elements end up where thin_rmap puts
// them. It works on the table's chunks in place, with one record held
// aside (tmp) where libstdc++ holds a value in a local variable.

const insertionThreshold = 16

// sort sorts the table by first data block exactly as libstdc++'s
// std::sort does.
func (t *table) sort() {
	n := t.n
	if n == 0 {
		return
	}
	t.introsortLoop(0, n, 2*log2(n))
	t.finalInsertionSort(0, n)
}

func log2(n int) int {
	k := -1
	for n > 0 {
		n >>= 1
		k++
	}
	return k
}

func (t *table) less(i, j int) bool { return t.at(i).data < t.at(j).data }
func (t *table) lessTmp(j int) bool { return t.tmp.data < t.at(j).data } // tmp < s[j]
func (t *table) tmpLess(i int) bool { return t.at(i).data < t.tmp.data } // s[i] < tmp
func (t *table) move(dst, src int)  { *t.at(dst) = *t.at(src) }
func (t *table) save(i int)         { t.tmp = *t.at(i) }
func (t *table) restore(i int)      { *t.at(i) = t.tmp }
func (t *table) swap(i, j int)      { a, b := t.at(i), t.at(j); *a, *b = *b, *a }
func (t *table) introsortLoop(first, last, depth int) {
	for last-first > insertionThreshold {
		if depth == 0 {
			t.heapSort(first, last)
			return
		}
		depth--
		cut := t.partitionPivot(first, last)
		t.introsortLoop(cut, last, depth)
		last = cut
	}
}

// moveMedianToFirst swaps the median of s[a], s[b], s[c] into s[result].
func (t *table) moveMedianToFirst(result, a, b, c int) {
	switch {
	case t.less(a, b):
		switch {
		case t.less(b, c):
			t.swap(result, b)
		case t.less(a, c):
			t.swap(result, c)
		default:
			t.swap(result, a)
		}
	case t.less(a, c):
		t.swap(result, a)
	case t.less(b, c):
		t.swap(result, c)
	default:
		t.swap(result, b)
	}
}

func (t *table) partitionPivot(first, last int) int {
	mid := first + (last-first)/2
	t.moveMedianToFirst(first, first+1, mid, last-1)
	return t.unguardedPartition(first+1, last, first)
}

// unguardedPartition partitions s[first:last] around s[pivot]; the pivot
// (outside the range) stops both scans.
func (t *table) unguardedPartition(first, last, pivot int) int {
	for {
		for t.less(first, pivot) {
			first++
		}
		last--
		for t.less(pivot, last) {
			last--
		}
		if first >= last {
			return first
		}
		t.swap(first, last)
		first++
	}
}

func (t *table) finalInsertionSort(first, last int) {
	if last-first > insertionThreshold {
		t.insertionSort(first, first+insertionThreshold)
		for i := first + insertionThreshold; i < last; i++ {
			t.unguardedLinearInsert(i)
		}
		return
	}
	t.insertionSort(first, last)
}

func (t *table) insertionSort(first, last int) {
	if first == last {
		return
	}
	for i := first + 1; i < last; i++ {
		if t.less(i, first) {
			t.save(i)
			for k := i; k > first; k-- {
				t.move(k, k-1)
			}
			t.restore(first)
		} else {
			t.unguardedLinearInsert(i)
		}
	}
}

// unguardedLinearInsert moves s[last] left past every greater element; an
// element not greater than it must exist to its left.
func (t *table) unguardedLinearInsert(last int) {
	t.save(last)
	next := last - 1
	for t.lessTmp(next) {
		t.move(last, next)
		last = next
		next--
	}
	t.restore(last)
}

// heapSort is libstdc++'s partial_sort over s[first:last]: make_heap, then
// sort_heap.
func (t *table) heapSort(first, last int) {
	n := last - first
	if n >= 2 {
		for parent := (n - 2) / 2; ; parent-- {
			t.save(first + parent)
			t.adjustHeap(first, parent, n)
			if parent == 0 {
				break
			}
		}
	}
	for end := n - 1; end > 0; end-- {
		t.save(first + end)
		t.move(first+end, first)
		t.adjustHeap(first, 0, end)
	}
}

// adjustHeap sifts the value held in tmp into the heap s[base:base+n] from
// the hole at base+hole.
func (t *table) adjustHeap(base, hole, n int) {
	top := hole
	child := hole
	for child < (n-1)/2 {
		child = 2 * (child + 1)
		if t.less(base+child, base+child-1) {
			child--
		}
		t.move(base+hole, base+child)
		hole = child
	}
	if n&1 == 0 && child == (n-2)/2 {
		child = 2 * (child + 1)
		t.move(base+hole, base+child-1)
		hole = child - 1
	}
	parent := (hole - 1) / 2
	for hole > top && t.tmpLess(base+parent) {
		t.move(base+hole, base+parent)
		hole = parent
		parent = (hole - 1) / 2
	}
	t.restore(base + hole)
}
