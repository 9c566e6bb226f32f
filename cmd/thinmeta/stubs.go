package main

var (
	checkCommand  = &command{name: "check", summary: "check the metadata (as thin_check)", run: notYet}
	lsCommand     = &command{name: "ls", summary: "list thin devices (as thin_ls)", run: notYet}
	rmapCommand   = &command{name: "rmap", summary: "map data blocks back to thin devices (as thin_rmap)", run: notYet}
	deltaCommand  = &command{name: "delta", summary: "compare the mappings of two thin devices (as thin_delta)", run: notYet}
	packCommand   = &command{name: "pack", summary: "pack metadata in thin_metadata_pack format", run: notYet}
	unpackCommand = &command{name: "unpack", summary: "unpack a thin_metadata_pack file", run: notYet}
)

func notYet(e *env, args []string) int { return exitFail }
