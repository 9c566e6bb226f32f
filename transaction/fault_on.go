//go:build thinmeta_faults

package transaction

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
)

// FaultEnv names the environment variable that, in a build with the tag
// thinmeta_faults, makes the process kill itself (SIGKILL) just before
// its N-th write or flush of a FileDevice: a crash of the process at that
// point. Only crash tests build with the tag.
const FaultEnv = "THINMETA_FAULT_AT"

var (
	faultAt  = func() int64 { n, _ := strconv.ParseInt(os.Getenv(FaultEnv), 10, 64); return n }()
	faultOps atomic.Int64
)

func beforeIO() {
	if faultAt > 0 && faultOps.Add(1) == faultAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered before anything else runs
	}
}
