package live

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/dm"
)

// SnapshotOptions tune Snapshot.
type SnapshotOptions struct {
	// SkipLockfs suspends the origin without freezing a file system
	// mounted on it (by default the file system is frozen, so the
	// snapshot holds it in a consistent state).
	SkipLockfs bool
	// NoRedeliver drops a SIGINT or SIGTERM that arrived while the origin
	// was suspended instead of delivering it again after the resume. A
	// program that handles those signals itself (signal.Notify) receives
	// them as they arrive anyway and may want this.
	NoRedeliver bool
}

// testHookWindow, if set, runs inside the snapshot window: after the
// origin's devices are suspended, before create_snap. Tests stop there.
var testHookWindow func()

// Snapshot creates thin id as a snapshot of thin origin. If the origin is
// active, every device of the pool that maps it is suspended around the
// create_snap message, and resumed on every path — the kernel requires it
// ("to avoid corruption": writes in flight must reach the origin's
// mappings before they are shared). All lookups and allocations happen
// first; between the suspend and the resume nothing else runs: no file
// I/O, no logging, no lookups. SIGINT and SIGTERM are held off until the
// resume and then delivered again (see SnapshotOptions.NoRedeliver). Only
// SIGKILL can stop the process inside the window; Open and Recover resume
// what such a crash leaves suspended.
//
// Devices of the origin that are already suspended are left as they are.
// A device stacked on the origin (a dm-crypt on top, say) is not frozen:
// suspend it around the call yourself.
func (p *Pool) Snapshot(id, origin uint64, opts *SnapshotOptions) error {
	if opts == nil {
		opts = &SnapshotOptions{}
	}
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkID(origin); err != nil {
		return err
	}
	if id == origin {
		return fmt.Errorf("snapshot of thin %d onto itself", id)
	}
	thins, err := p.Thins()
	if err != nil {
		return err
	}
	var flags dm.SuspendFlags
	if opts.SkipLockfs {
		flags = dm.SkipLockfs
	}
	var suspend, resume []*dm.Prepared
	var names []string
	seen := map[string]bool{}
	for _, t := range thins {
		if t.ID != origin || t.Info.Suspended() || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		s, err := p.ctl.PrepareSuspend(t.Name, flags)
		if err != nil {
			return err
		}
		r, err := p.ctl.PrepareResume(t.Name, 0)
		if err != nil {
			return err
		}
		suspend, resume, names = append(suspend, s), append(resume, r), append(names, t.Name)
	}
	msgText := fmt.Sprintf("create_snap %d %d", id, origin)
	msg, err := p.ctl.PrepareMessage(p.name, 0, msgText)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	var held []os.Signal
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			held = append(held, s)
		}
	}
	if len(suspend) > 0 && len(held) > 0 {
		signal.Notify(sigs, held...)
	}

	tried, suspendErr, msgErr, resumeErr := window(suspend, msg, resume)

	if len(suspend) > 0 && len(held) > 0 {
		signal.Stop(sigs)
		if !opts.NoRedeliver {
			redeliver(sigs)
		}
	}
	switch {
	case resumeErr != nil:
		return fmt.Errorf("snapshot %d of %d: %w: a device is left suspended; resume it with Recover (thinmeta pool recover %s)",
			id, origin, resumeErr, p.name)
	case suspendErr != nil:
		return fmt.Errorf("snapshot %d of %d: suspending %s: %w (no snapshot taken; resumed)", id, origin, names[tried-1], suspendErr)
	case msgErr != nil:
		return snapshotError(p.name, msgText, id, origin, msgErr)
	}
	return nil
}

// runner is a prepared ioctl (*dm.Prepared; a fake in tests).
type runner interface{ Run() error }

// window is the critical section: suspend each device, send the message,
// resume each device that a suspend was tried on (in reverse order). It
// only runs prepared ioctls. It returns how many suspends were tried and
// the errors of the suspends, the message and the resumes.
func window[R runner](suspend []R, msg R, resume []R) (tried int, suspendErr, msgErr, resumeErr error) {
	for _, s := range suspend {
		tried++
		if suspendErr = s.Run(); suspendErr != nil {
			break
		}
	}
	if suspendErr == nil {
		if testHookWindow != nil {
			testHookWindow()
		}
		msgErr = msg.Run()
	}
	for i := tried - 1; i >= 0; i-- {
		var e error
		for range 3 {
			if e = resume[i].Run(); e == nil {
				break
			}
		}
		if e != nil && resumeErr == nil {
			resumeErr = e
		}
	}
	return tried, suspendErr, msgErr, resumeErr
}

// redeliver sends this process the signals that arrived while they were
// held. Each goes to the calling thread (tgkill), so it is handled as the
// system call returns: a default action (exit) happens before Snapshot
// returns, not at some later moment the program might not live to see.
func redeliver(sigs chan os.Signal) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		select {
		case s := <-sigs:
			if ss, ok := s.(syscall.Signal); ok {
				unix.Tgkill(os.Getpid(), unix.Gettid(), ss)
			}
		default:
			return
		}
	}
}

func snapshotError(pool, msg string, id, origin uint64, err error) error {
	switch {
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("pool %s: %s: %w: thin %d %w", pool, msg, err, id, ErrExists)
	case errors.Is(err, unix.ENODATA):
		return fmt.Errorf("pool %s: %s: %w: origin %d: %w", pool, msg, err, origin, ErrNoThin)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("pool %s: %s: %w (%w)", pool, msg, err, ErrReadOnly)
	}
	return fmt.Errorf("pool %s: %s: %w", pool, msg, err)
}

// Recover resumes the pool if it is suspended, then every suspended thin
// device of the pool: what a manager killed inside a snapshot's window (or
// a resize) leaves behind. It returns the names of the devices it resumed.
func (p *Pool) Recover() ([]string, error) {
	var done []string
	info, err := p.ctl.Info(p.name)
	if err != nil {
		return nil, fmt.Errorf("recover pool %s: %w", p.name, err)
	}
	if info.Suspended() {
		// A flushing suspend could wait for queued writes that need the
		// resume to proceed.
		if _, err := p.ctl.Resume(p.name, dm.NoFlush|dm.SkipLockfs); err != nil {
			return nil, fmt.Errorf("recover pool %s: %w", p.name, err)
		}
		done = append(done, p.name)
	}
	thins, err := p.Thins()
	if err != nil {
		return done, fmt.Errorf("recover pool %s: %w", p.name, err)
	}
	seen := map[string]bool{}
	for _, t := range thins {
		if !t.Info.Suspended() || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		if _, err := p.ctl.Resume(t.Name, 0); err != nil {
			return done, fmt.Errorf("recover pool %s: %w", p.name, err)
		}
		done = append(done, t.Name)
	}
	return done, nil
}
