// Package delta compares the mappings of two thin devices of a pool as
// thin_delta does, with output identical to thin_delta 0.9.0's.
//
// Each device's mappings are first read into runs of consecutive virtual
// blocks mapped to consecutive data blocks (mapping times are ignored),
// then the two run lists are compared virtual block by virtual block.
//
// It is a query layer above package thin: it imports thin and its
// internal walker (and so btree and transaction), and nothing that writes.
package delta
