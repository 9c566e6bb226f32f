package check

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/thinmeta/thinmeta/thin"
)

// ErrInconsistent means a pool failed its check; the *FailedError carrying
// it lists the findings.
var ErrInconsistent = errors.New("metadata failed its check")

// FailedError is returned by Verify for a pool that does not check clean.
type FailedError struct {
	Summary  Summary
	Findings []Finding // the first findings (at most maxKept)
}

const maxKept = 20

// Error implements error.
func (e *FailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d fatal and %d non-fatal findings", ErrInconsistent, e.Summary.Fatal, e.Summary.NonFatal)
	for _, f := range e.Findings {
		b.WriteString("\n  ")
		b.WriteString(f.String())
	}
	return b.String()
}

// Unwrap returns ErrInconsistent.
func (e *FailedError) Unwrap() error { return ErrInconsistent }

// Verify checks p fully and returns nil if it is consistent, or a
// *FailedError. Non-fatal findings (leaks, under-populated nodes) are
// tolerated when ignoreNonFatal is set. It suits thin.WriteOptions.Verify
// (see Verifier), so that damaged metadata is never written.
func Verify(ctx context.Context, p *thin.Pool, ignoreNonFatal bool) error {
	var kept []Finding
	sum, err := Pool(ctx, p, Options{IgnoreNonFatal: ignoreNonFatal}, func(f Finding) {
		if len(kept) < maxKept && (f.Severity == Fatal || !ignoreNonFatal) {
			kept = append(kept, f)
		}
	})
	if err != nil {
		return err
	}
	if sum.OK(ignoreNonFatal) {
		return nil
	}
	return &FailedError{Summary: sum, Findings: kept}
}

// Verifier returns Verify as a function for thin.WriteOptions.Verify,
// checking under ctx.
func Verifier(ctx context.Context, ignoreNonFatal bool) func(*thin.Pool) error {
	return func(p *thin.Pool) error { return Verify(ctx, p, ignoreNonFatal) }
}
