package main

// TODO: not implemented yet.
var checkCommand = &command{name: "check", summary: "check the metadata (as thin_check)", run: func(e *env, args []string) int { return exitFail }}
