package rmap

// thin_rmap orders its regions with an unstable sort by first data block,
// so regions of different devices that start at the same data block come
// out in the order GCC's std::sort leaves them. sortLikeCxx reproduces
// that order: it is the introsort of libstdc++ (median-of-three quicksort
// down to runs of 16, heapsort past a depth of 2*log2(n), then one
// insertion sort), step for step, so that equal elements end up where
// thin_rmap puts them.

const insertionThreshold = 16

// sortLikeCxx sorts s by less exactly as libstdc++'s std::sort does.
func sortLikeCxx[T any](s []T, less func(a, b *T) bool) {
	n := len(s)
	if n == 0 {
		return
	}
	introsortLoop(s, 0, n, 2*log2(n), less)
	finalInsertionSort(s, 0, n, less)
}

func log2(n int) int {
	k := -1
	for n > 0 {
		n >>= 1
		k++
	}
	return k
}

func introsortLoop[T any](s []T, first, last, depth int, less func(a, b *T) bool) {
	for last-first > insertionThreshold {
		if depth == 0 {
			heapSort(s[first:last], less)
			return
		}
		depth--
		cut := partitionPivot(s, first, last, less)
		introsortLoop(s, cut, last, depth, less)
		last = cut
	}
}

// moveMedianToFirst swaps the median of s[a], s[b], s[c] into s[result].
func moveMedianToFirst[T any](s []T, result, a, b, c int, less func(a, b *T) bool) {
	switch {
	case less(&s[a], &s[b]):
		switch {
		case less(&s[b], &s[c]):
			s[result], s[b] = s[b], s[result]
		case less(&s[a], &s[c]):
			s[result], s[c] = s[c], s[result]
		default:
			s[result], s[a] = s[a], s[result]
		}
	case less(&s[a], &s[c]):
		s[result], s[a] = s[a], s[result]
	case less(&s[b], &s[c]):
		s[result], s[c] = s[c], s[result]
	default:
		s[result], s[b] = s[b], s[result]
	}
}

func partitionPivot[T any](s []T, first, last int, less func(a, b *T) bool) int {
	mid := first + (last-first)/2
	moveMedianToFirst(s, first, first+1, mid, last-1, less)
	return unguardedPartition(s, first+1, last, first, less)
}

// unguardedPartition partitions s[first:last] around s[pivot]; the pivot
// (outside the range) stops both scans.
func unguardedPartition[T any](s []T, first, last, pivot int, less func(a, b *T) bool) int {
	for {
		for less(&s[first], &s[pivot]) {
			first++
		}
		last--
		for less(&s[pivot], &s[last]) {
			last--
		}
		if first >= last {
			return first
		}
		s[first], s[last] = s[last], s[first]
		first++
	}
}

func finalInsertionSort[T any](s []T, first, last int, less func(a, b *T) bool) {
	if last-first > insertionThreshold {
		insertionSort(s, first, first+insertionThreshold, less)
		for i := first + insertionThreshold; i < last; i++ {
			unguardedLinearInsert(s, i, less)
		}
		return
	}
	insertionSort(s, first, last, less)
}

func insertionSort[T any](s []T, first, last int, less func(a, b *T) bool) {
	if first == last {
		return
	}
	for i := first + 1; i < last; i++ {
		if less(&s[i], &s[first]) {
			v := s[i]
			copy(s[first+1:i+1], s[first:i])
			s[first] = v
		} else {
			unguardedLinearInsert(s, i, less)
		}
	}
}

// unguardedLinearInsert moves s[last] left past every greater element; an
// element not greater than it must exist to its left.
func unguardedLinearInsert[T any](s []T, last int, less func(a, b *T) bool) {
	v := s[last]
	next := last - 1
	for less(&v, &s[next]) {
		s[last] = s[next]
		last = next
		next--
	}
	s[last] = v
}

// heapSort is libstdc++'s partial_sort over the whole range: make_heap,
// then sort_heap.
func heapSort[T any](s []T, less func(a, b *T) bool) {
	n := len(s)
	if n >= 2 {
		for parent := (n - 2) / 2; ; parent-- {
			adjustHeap(s, parent, n, s[parent], less)
			if parent == 0 {
				break
			}
		}
	}
	for last := n - 1; last > 0; last-- {
		v := s[last]
		s[last] = s[0]
		adjustHeap(s, 0, last, v, less)
	}
}

func adjustHeap[T any](s []T, hole, n int, v T, less func(a, b *T) bool) {
	top := hole
	child := hole
	for child < (n-1)/2 {
		child = 2 * (child + 1)
		if less(&s[child], &s[child-1]) {
			child--
		}
		s[hole] = s[child]
		hole = child
	}
	if n&1 == 0 && child == (n-2)/2 {
		child = 2 * (child + 1)
		s[hole] = s[child-1]
		hole = child - 1
	}
	parent := (hole - 1) / 2
	for hole > top && less(&s[parent], &v) {
		s[hole] = s[parent]
		hole = parent
		parent = (hole - 1) / 2
	}
	s[hole] = v
}
