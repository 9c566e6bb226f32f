package live

import (
	"context"
	"fmt"

	"github.com/thinmeta/thinmeta/dm"
)

// EventNr returns the pool device's event counter.
func (p *Pool) EventNr() (uint32, error) {
	info, err := p.ctl.Info(p.name)
	if err != nil {
		return 0, fmt.Errorf("pool %s: %w", p.name, err)
	}
	return info.EventNr, nil
}

// WaitEvent waits until the pool's event counter differs from after (the
// pool raises events at its low water marks and when resumed) or ctx is
// done, and returns the new counter.
func (p *Pool) WaitEvent(ctx context.Context, after uint32) (uint32, error) {
	info, err := p.ctl.WaitEvent(ctx, p.name, after)
	if err != nil {
		return 0, fmt.Errorf("pool %s: %w", p.name, err)
	}
	return info.EventNr, nil
}

// WaitLowWater returns once the pool's free data blocks are at or below its
// low water mark (or it is out of data space), waiting for the pool's
// events in between, or when ctx is done. The kernel raises the event once
// per resume of the pool; growing the pool re-arms it.
func (p *Pool) WaitLowWater(ctx context.Context) (PoolStatus, error) {
	for {
		nr, err := p.EventNr()
		if err != nil {
			return PoolStatus{}, err
		}
		s, err := p.Status()
		if err != nil {
			return PoolStatus{}, err
		}
		if s.FreeDataBlocks() <= p.table.LowWater || s.Mode == OutOfDataSpace {
			return s, nil
		}
		if _, err := p.WaitEvent(ctx, nr); err != nil {
			return s, err
		}
	}
}

// GrowData makes the pool blocks data blocks large: the data device must
// have grown to at least that size already. The pool's table is reloaded
// with the new length and the pool resumed; the kernel extends its data
// space map and lets writes waiting for space proceed.
func (p *Pool) GrowData(blocks uint64) error {
	bs := uint64(p.table.BlockSize)
	if blocks*bs <= p.length {
		return fmt.Errorf("grow pool %s to %d data blocks: it has %d already", p.name, blocks, p.length/bs)
	}
	data, err := statBlockDevice(p.dataPath, "data")
	if err != nil {
		return fmt.Errorf("grow pool %s: %w", p.name, err)
	}
	if uint64(data.size) < blocks*bs*512 {
		return fmt.Errorf("grow pool %s to %d data blocks: data device %s has %d bytes: %w", p.name, blocks, p.dataPath, data.size, ErrTooSmall)
	}
	if err := p.reloadTable(blocks * bs); err != nil {
		return fmt.Errorf("grow pool %s: %w", p.name, err)
	}
	p.length = blocks * bs
	return nil
}

// GrowMetadata makes the pool use all of its metadata device after the
// device has grown (up to the 16 GiB the kernel uses): the table is
// reloaded and the pool resumed, and the kernel extends its metadata space
// map.
func (p *Pool) GrowMetadata() error {
	s, err := p.Status()
	if err != nil {
		return err
	}
	meta, err := statBlockDevice(p.metaPath, "metadata")
	if err != nil {
		return fmt.Errorf("grow pool %s: %w", p.name, err)
	}
	if uint64(meta.size)/MetadataBlockSize <= s.TotalMetadataBlocks {
		return fmt.Errorf("grow pool %s: metadata device %s (%d blocks) is not larger than the pool's metadata (%d blocks)",
			p.name, p.metaPath, meta.size/MetadataBlockSize, s.TotalMetadataBlocks)
	}
	if err := p.reloadTable(p.length); err != nil {
		return fmt.Errorf("grow pool %s: %w", p.name, err)
	}
	return nil
}

// reloadTable loads the pool's table with length sectors and resumes it.
// Without flushing: a pool out of data space holds writes that cannot
// complete before it has grown, and a flushing suspend would wait for them
// forever.
func (p *Pool) reloadTable(length uint64) error {
	if _, err := p.ctl.Load(p.name, []dm.Target{{Start: 0, Length: length, Type: "thin-pool", Params: p.table.String()}}, false); err != nil {
		return fmt.Errorf("%w%s", err, kernelHint(err))
	}
	if _, err := p.ctl.Resume(p.name, dm.NoFlush|dm.SkipLockfs); err != nil {
		p.ctl.ClearInactive(p.name)
		return fmt.Errorf("%w%s", err, kernelHint(err))
	}
	return nil
}
