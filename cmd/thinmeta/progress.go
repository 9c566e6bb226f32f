package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/thinmeta/thinmeta/thin"
)

// Timing of the progress line (variables for the tests).
var (
	// progressDelay: operations that finish sooner show no progress line.
	progressDelay = 500 * time.Millisecond
	// progressInterval: the line is redrawn at most this often.
	progressInterval = 200 * time.Millisecond
	// progressClock is the clock of progress lines.
	progressClock = time.Now
)

// progress returns a callback that long operations call with the work done
// so far and the total (in any unit), and a function to call when the
// operation ends, whether it succeeded or not. When standard error is a
// terminal and quiet is false, the callback keeps one line of standard
// error up to date ("unpack:  42%  ETA 0:13") and end erases it; otherwise
// both do nothing. The callback may be called from several goroutines.
func (e *env) progress(what string, quiet bool) (update func(done, total uint64), end func()) {
	f, ok := e.stderr.(*os.File)
	if quiet || !ok || e.isTerminal == nil || !e.isTerminal(f) {
		return func(uint64, uint64) {}, func() {}
	}
	p := &progressLine{w: e.stderr, what: what, now: progressClock}
	p.start = p.now()
	return p.update, p.end
}

// libraryProgress is progress for the Progress option of check, dump, ls
// and restore: the same line, drawn from the library's reports. A command
// whose output goes to the terminal passes quiet when stdout is one
// (see stdoutIsTerminal), so the line does not break into its output.
func (e *env) libraryProgress(what string, quiet bool) (update func(thin.Progress), end func()) {
	u, end := e.progress(what, quiet)
	return func(p thin.Progress) { u(p.Done, p.Total) }, end
}

// stdoutIsTerminal reports whether standard output is a terminal.
func (e *env) stdoutIsTerminal() bool {
	f, ok := e.stdout.(*os.File)
	return ok && e.isTerminal != nil && e.isTerminal(f)
}

// progressLine draws a progress line on a terminal.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	what  string
	now   func() time.Time
	start time.Time
	last  time.Time // when the line was last drawn; zero before the first
	width int       // length of the line drawn last
}

func (p *progressLine) update(done, total uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	elapsed := now.Sub(p.start)
	if elapsed < progressDelay || !p.last.IsZero() && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	p.draw(progressText(p.what, done, total, elapsed))
}

func (p *progressLine) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		p.draw("")
		fmt.Fprint(p.w, "\r")
		p.width = 0
	}
}

// draw overwrites the current line with s, padding with spaces over what
// is left of a longer previous line.
func (p *progressLine) draw(s string) {
	pad := max(p.width-len(s), 0)
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.width = len(s)
}

// progressText formats "what:  42%  ETA 1:05". The ETA assumes the rest
// goes at the average speed so far; it is left out until there is enough
// to go on.
func progressText(what string, done, total uint64, elapsed time.Duration) string {
	if total == 0 {
		return what + ": working"
	}
	done = min(done, total)
	frac := float64(done) / float64(total)
	s := fmt.Sprintf("%s: %3d%%", what, int(frac*100))
	if done > 0 && done < total && elapsed >= time.Second {
		left := time.Duration(float64(elapsed) * (1 - frac) / frac)
		s += "  ETA " + clock(left)
	}
	return s
}

// clock formats a duration as m:ss or h:mm:ss, rounded up to the second.
func clock(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	}
	return fmt.Sprintf("%d:%02d", secs/60, secs%60)
}
