package main

// TODO: not implemented yet.
var rmapCommand = &command{name: "rmap", summary: "map data blocks back to thin devices (as thin_rmap)", run: func(e *env, args []string) int { return exitFail }}
