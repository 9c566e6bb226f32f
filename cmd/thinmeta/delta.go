package main

// TODO: not implemented yet.
var deltaCommand = &command{name: "delta", summary: "compare the mappings of two thin devices (as thin_delta)", run: func(e *env, args []string) int { return exitFail }}
