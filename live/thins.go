package live

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/dm"
)

// Thin is an active thin device of a pool, as the kernel listed it. Its
// methods change nothing in it and only ask the kernel, through the pool's
// dm.Control: they are safe for concurrent use.
type Thin struct {
	Name    string
	ID      uint64
	Sectors uint64 // the device's size
	Info    dm.Info
	pool    *Pool
}

// Thins lists the active thin devices of the pool: every device whose
// table has a thin target on this pool (a device of several targets is
// listed once per thin target).
func (p *Pool) Thins() ([]Thin, error) {
	list, err := p.ctl.Devices()
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.name, err)
	}
	poolDev := dm.DevString(p.info.Dev)
	var out []Thin
	for _, d := range list {
		if d.Dev == p.info.Dev {
			continue
		}
		info, table, err := p.ctl.Table(d.Name)
		if errors.Is(err, unix.ENXIO) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.name, err)
		}
		var size uint64
		for _, t := range table {
			size = max(size, t.Start+t.Length)
		}
		for _, t := range table {
			if t.Type != "thin" {
				continue
			}
			tt, err := ParseThinTable(t.Params)
			if err != nil || tt.PoolDev != poolDev {
				continue
			}
			out = append(out, Thin{Name: d.Name, ID: tt.ID, Sectors: size, Info: info, pool: p})
		}
	}
	return out, nil
}

// Thin returns the active thin device name of the pool.
func (p *Pool) Thin(name string) (*Thin, error) {
	info, table, err := p.ctl.Table(name)
	if err != nil {
		return nil, err
	}
	poolDev := dm.DevString(p.info.Dev)
	for _, t := range table {
		if t.Type != "thin" {
			continue
		}
		if tt, err := ParseThinTable(t.Params); err == nil && tt.PoolDev == poolDev {
			return &Thin{Name: name, ID: tt.ID, Sectors: t.Start + t.Length, Info: info, pool: p}, nil
		}
	}
	return nil, fmt.Errorf("device %s: not a thin device of pool %s", name, p.name)
}

// ActivateThin makes thin id of the pool available as device name, of
// sectors 512-byte sectors (the pool stores no size: the table is the
// size).
func (p *Pool) ActivateThin(name string, id, sectors uint64) (*Thin, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if sectors == 0 {
		return nil, fmt.Errorf("activate thin %d as %s: a size of 0 sectors", id, name)
	}
	if err := checkNewName(p.ctl, name); err != nil {
		return nil, fmt.Errorf("activate thin %d: %w", id, err)
	}
	if _, err := p.ctl.Create(name, ""); err != nil {
		return nil, fmt.Errorf("activate thin %d: %w", id, err)
	}
	tt := ThinTable{PoolDev: dm.DevString(p.info.Dev), ID: id}
	if _, err := p.ctl.Load(name, []dm.Target{{Start: 0, Length: sectors, Type: "thin", Params: tt.String()}}, false); err != nil {
		p.ctl.Remove(name)
		return nil, fmt.Errorf("activate thin %d as %s: %w%s", id, name, err, kernelHint(err))
	}
	info, err := p.ctl.Resume(name, 0)
	if err != nil {
		p.ctl.Remove(name)
		return nil, fmt.Errorf("activate thin %d as %s: %w", id, name, err)
	}
	return &Thin{Name: name, ID: id, Sectors: sectors, Info: info, pool: p}, nil
}

// Path returns the device node of the thin (see dm.Control.Node).
func (t *Thin) Path() (string, error) { return t.pool.ctl.NodeOf(t.Info) }

// Deactivate removes the thin device; its data stays in the pool. It fails
// with EBUSY while the device is open.
func (t *Thin) Deactivate() error {
	if err := t.pool.ctl.Remove(t.Name); err != nil {
		return fmt.Errorf("deactivate thin %s: %w", t.Name, err)
	}
	return nil
}

// Status returns the thin's status.
func (t *Thin) Status() (ThinStatus, error) {
	_, st, err := t.pool.ctl.Status(t.Name, false)
	if err != nil {
		return ThinStatus{}, fmt.Errorf("thin %s: %w", t.Name, err)
	}
	if len(st) != 1 || st[0].Type != "thin" {
		return ThinStatus{}, fmt.Errorf("thin %s: not a single thin target", t.Name)
	}
	s, err := ParseThinStatus(st[0].Params)
	if err != nil {
		return ThinStatus{}, fmt.Errorf("thin %s: %w", t.Name, err)
	}
	return s, nil
}
