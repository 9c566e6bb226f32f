// Package rmap maps regions of a pool's data device back to the thin
// devices and virtual blocks that map them, as thin_rmap does, with
// identical results to thin_rmap 0.9.0.
//
// Like thin_rmap it walks the live mapping tree once, device by device, and
// visits each tree node at most once: a node that several devices share
// (as snapshots share their origin's nodes) is reported only under the
// first device that reaches it, in device-id order.
//
// It is a query layer above package thin: it imports thin and its
// internal walker (and so btree and transaction), and nothing that writes.
package rmap
