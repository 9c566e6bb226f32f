package main

// TODO: not implemented yet.
var packCommand = &command{name: "pack", summary: "pack metadata in thin_metadata_pack format", run: func(e *env, args []string) int { return exitFail }}
