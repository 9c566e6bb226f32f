package main

// TODO: not implemented yet.
var unpackCommand = &command{name: "unpack", summary: "unpack a thin_metadata_pack file", run: func(e *env, args []string) int { return exitFail }}
