package crashtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// Oracle runs both generations of thin_check on survivors of cuts in the
// background, several at a time: thin_check 1.1.0 spends half a second
// asleep in every run (its progress thread), which would otherwise
// dominate a crash test. Wait reports what failed.
type Oracle struct {
	t     testing.TB
	tools []string // thin_check of each generation
	dir   string
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	errs  []string
	n     int
}

// NewOracle returns an oracle for t; the tools are found (or the test
// skipped, or failed when CI is set) as tptest.NeedGen does.
func NewOracle(t testing.TB) *Oracle {
	t.Helper()
	o := &Oracle{t: t, dir: t.TempDir(), sem: make(chan struct{}, 12)}
	for _, g := range tptest.Gens {
		o.tools = append(o.tools, tptest.NeedGen(t, g, "thin_check"))
	}
	return o
}

// Check queues img (copied) for both thin_check generations, with extra
// arguments such as -m, and label for the report. Each must exit 0 and
// report nothing but its stages.
func (o *Oracle) Check(img []byte, label string, args ...string) {
	o.mu.Lock()
	o.n++
	path := filepath.Join(o.dir, fmt.Sprintf("survivor-%d.img", o.n))
	o.mu.Unlock()
	if err := os.WriteFile(path, img, 0o644); err != nil {
		o.t.Fatal(err)
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.sem <- struct{}{}
		defer func() { <-o.sem }()
		defer os.Remove(path)
		for _, tool := range o.tools {
			cmd := exec.Command(tool, append(append([]string(nil), args...), path)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if f := tptest.Findings(stderr.Bytes()); err != nil || len(f) > 0 {
				o.mu.Lock()
				o.errs = append(o.errs, fmt.Sprintf("%s: %s %s: %v\n%s", label, tool, strings.Join(args, " "), err, strings.Join(f, "\n")))
				o.mu.Unlock()
			}
		}
	}()
}

// Checked returns how many images were queued.
func (o *Oracle) Checked() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Wait waits for every check and fails the test with what failed.
func (o *Oracle) Wait() {
	o.t.Helper()
	o.wg.Wait()
	for _, e := range o.errs {
		o.t.Error(e)
	}
}
