// Package walk reads the trees of a pool for the query tools (thin/ls,
// thin/rmap, thin/delta) with the checks thin-provisioning-tools 0.9.0
// applies when it visits a B-tree, and fast enough for pools of millions
// of mappings: leaves are decoded in place, blocks are read with an
// adaptive read-ahead, and devices can be walked on several goroutines.
//
// Its walks run on btree.Walker and check every node as btree.Tree's walks
// do (btree.CheckNode), plus btree.ToolConventions: every node must have a
// max_entries divisible by three and every node but the root at least
// max_entries/3 entries, as the tools' btree_damage_visitor demands.
//
// It imports transaction, btree and thin; only packages under thin/ use it.
package walk
