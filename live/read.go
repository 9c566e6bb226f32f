package live

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/thin"
)

// ReserveMetadataSnapshot takes a metadata snapshot of the pool (the
// reserve_metadata_snap message) and returns its block, the held root.
// Only one can be held: if one is, the error wraps ErrHeld.
func (p *Pool) ReserveMetadataSnapshot() (uint64, error) {
	if err := p.message("reserve_metadata_snap"); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return 0, fmt.Errorf("%w: %w", err, ErrHeld)
		}
		return 0, err
	}
	s, err := p.Status()
	if err != nil {
		return 0, err
	}
	if s.HeldRoot == 0 {
		return 0, fmt.Errorf("pool %s: the status shows no held root after reserve_metadata_snap", p.name)
	}
	return s.HeldRoot, nil
}

// ReleaseMetadataSnapshot drops the pool's metadata snapshot. With none
// held the error wraps ErrNotHeld.
func (p *Pool) ReleaseMetadataSnapshot() error {
	if err := p.message("release_metadata_snap"); err != nil {
		if errors.Is(err, unix.EINVAL) {
			if s, serr := p.Status(); serr == nil && s.HeldRoot == 0 {
				return fmt.Errorf("%w: %w", err, ErrNotHeld)
			}
		}
		return err
	}
	return nil
}

// ReadOptions tune Read.
type ReadOptions struct {
	// ReleaseStale releases a metadata snapshot that is already held
	// (left by a reader that crashed) before taking a new one. Without it
	// such a snapshot makes Read fail with ErrHeld.
	ReleaseStale bool
}

// Read reserves a metadata snapshot, calls fn with a read-only view of it
// and releases it — always, also when fn fails or panics. The view is a
// thin.Pool, which the thin/dump, thin/ls and thin/delta packages take; it
// must not be used after fn returns. The metadata device is read with
// O_DIRECT: the kernel writes metadata below the page cache, so cached
// pages could be stale.
func (p *Pool) Read(opts *ReadOptions, fn func(*thin.Pool) error) (err error) {
	if opts == nil {
		opts = &ReadOptions{}
	}
	root, err := p.ReserveMetadataSnapshot()
	if errors.Is(err, ErrHeld) && opts.ReleaseStale {
		if err = p.ReleaseMetadataSnapshot(); err != nil {
			return err
		}
		root, err = p.ReserveMetadataSnapshot()
	}
	if err != nil {
		return err
	}
	defer func() {
		if rerr := p.ReleaseMetadataSnapshot(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return p.readAt(root, fn)
}

// ReadHeld calls fn with a view of the metadata snapshot that is held
// already (reserved earlier, perhaps by a reader that crashed), without
// reserving or releasing one.
func (p *Pool) ReadHeld(fn func(*thin.Pool) error) error {
	s, err := p.Status()
	if err != nil {
		return err
	}
	if s.HeldRoot == 0 {
		return fmt.Errorf("pool %s: %w", p.name, ErrNotHeld)
	}
	return p.readAt(s.HeldRoot, fn)
}

// readAt reads the snapshot whose superblock copy is at block root.
func (p *Pool) readAt(root uint64, fn func(*thin.Pool) error) error {
	d, err := OpenDevice(p.metaPath, DeviceOptions{})
	if err != nil {
		return fmt.Errorf("pool %s: metadata: %w", p.name, err)
	}
	defer d.Close()
	// Block 0 may be being rewritten by a commit at this moment: a torn
	// read fails its checksum, and the next read gets the new block.
	var live *thin.Pool
	for range 5 {
		if live, err = thin.NewPool(d, d.Size()); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pool %s: metadata: %w", p.name, err)
	}
	snap, err := live.SnapshotAt(root)
	if err != nil {
		return fmt.Errorf("pool %s: metadata snapshot at block %d: %w", p.name, root, err)
	}
	return fn(snap)
}
