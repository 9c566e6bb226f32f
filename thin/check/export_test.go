package check

// KeepAllKeys makes a check keep every node's keys, as it did before it
// kept only those of the nodes the metadata space map counts as shared.
func KeepAllKeys(o *Options) { o.keepAllKeys = true }
