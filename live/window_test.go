package live

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fakeCall records its runs in a shared log and fails as told.
type fakeCall struct {
	name  string
	log   *[]string
	fails int // fail this many runs, then succeed
}

var errFake = errors.New("fake failure")

func (f *fakeCall) Run() error {
	*f.log = append(*f.log, f.name)
	if f.fails > 0 {
		f.fails--
		return fmt.Errorf("%s: %w", f.name, errFake)
	}
	return nil
}

// The window's protocol, against an independent statement of it: suspend
// in order until one fails; the message only if all suspends succeeded;
// resume, in reverse order, every device a suspend was tried on (also the
// one whose suspend failed), retrying a failed resume up to three times.
func TestWindowResumesOnEveryPath(t *testing.T) {
	for _, c := range []struct {
		name           string
		suspendFails   []int // per device
		msgFails       int
		resumeFails    []int
		wantLog        string
		wantTried      int
		wantSus, wantM bool // errors expected
		wantRes        bool
	}{
		{"all well", []int{0, 0}, 0, []int{0, 0}, "s0 s1 m r1 r0", 2, false, false, false},
		{"message refused", []int{0, 0}, 1, []int{0, 0}, "s0 s1 m r1 r0", 2, false, true, false},
		{"second suspend fails", []int{0, 1, 0}, 0, []int{0, 0, 0}, "s0 s1 r1 r0", 2, true, false, false},
		{"first suspend fails", []int{1, 0}, 0, []int{0, 0}, "s0 r0", 1, true, false, false},
		{"a resume fails twice", []int{0, 0}, 0, []int{2, 0}, "s0 s1 m r1 r0 r0 r0", 2, false, false, false},
		{"a resume keeps failing", []int{0, 0}, 0, []int{0, 5}, "s0 s1 m r1 r1 r1 r0", 2, false, false, true},
		{"no device", nil, 0, nil, "m", 0, false, false, false},
	} {
		var log []string
		var sus, res []*fakeCall
		for i := range c.suspendFails {
			sus = append(sus, &fakeCall{name: fmt.Sprintf("s%d", i), log: &log, fails: c.suspendFails[i]})
			res = append(res, &fakeCall{name: fmt.Sprintf("r%d", i), log: &log, fails: c.resumeFails[i]})
		}
		msg := &fakeCall{name: "m", log: &log, fails: c.msgFails}
		tried, se, me, re := window(sus, msg, res)
		if got := strings.Join(log, " "); got != c.wantLog || tried != c.wantTried ||
			(se != nil) != c.wantSus || (me != nil) != c.wantM || (re != nil) != c.wantRes {
			t.Errorf("%s: calls %q tried %d errors %v %v %v; want %q tried %d", c.name, got, tried, se, me, re, c.wantLog, c.wantTried)
		}
	}
}
