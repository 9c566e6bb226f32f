package main

// TODO: not implemented yet.
var lsCommand = &command{name: "ls", summary: "list thin devices (as thin_ls)", run: func(e *env, args []string) int { return exitFail }}
