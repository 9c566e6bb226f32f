package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/dm"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// MaxThinID is the largest thin id the kernel accepts (24 bits).
const MaxThinID = 1<<24 - 1

// MetadataBlockSize is the size of a metadata block.
const MetadataBlockSize = 4096

// Pool is an active thin pool: a device-mapper device with a thin-pool
// table. It holds no state beyond the device's name and its table, which
// it reads from the kernel, so a Pool of a pool that another process (or a
// crashed earlier run) set up is the same as one this process created.
//
// A Pool is not safe for concurrent use: the methods that grow or recover
// the pool refresh the table it holds. Two Pools of the same pool, in one
// process or two, are as safe as the kernel's messages are: each message
// is atomic, a sequence of them is not.
type Pool struct {
	ctl   *dm.Control
	name  string
	info  dm.Info
	table PoolTable
	// length of the pool target in sectors
	length uint64
	// metaPath and dataPath are block-device nodes of the two devices.
	metaPath, dataPath string
	// Recovered lists the devices Open found suspended and resumed.
	Recovered []string
}

// CreateOptions describe a new pool.
type CreateOptions struct {
	// MetadataDevice and DataDevice are block devices (paths). Neither may
	// be in use.
	MetadataDevice, DataDevice string
	// Format formats the metadata device with thinmeta first; what it
	// held is lost. Without Format the device must hold a pool, which is
	// checked before it is activated.
	Format bool
	// BlockSize is the data block size in 512-byte sectors: a multiple of
	// 128 from 128 to 2097152. Format needs it; for existing metadata 0
	// means the one the metadata records, and another value is refused.
	BlockSize uint32
	// MetadataBlocks limits the metadata space map when formatting (0: the
	// whole device, up to the 16 GiB the kernel uses).
	MetadataBlocks uint64
	// DataBlocks is the pool's size in data blocks; 0 means all of the data
	// device. It cannot be smaller than what existing metadata records.
	DataBlocks uint64
	// LowWater is the low water mark in data blocks: when free data blocks
	// fall to it the pool raises an event (see WaitLowWater).
	LowWater uint64
	Features Features
	// UUID is the device-mapper uuid of the pool device (optional).
	UUID string
	// Force activates metadata whose needs_check flag is set (the kernel
	// keeps such a pool read-only).
	Force bool
	// SkipCheck activates existing metadata after checking only its
	// superblock, not its trees and space maps.
	SkipCheck bool
}

// OpenOptions tune Open.
type OpenOptions struct {
	// NoRecover leaves suspended devices of the pool suspended.
	NoRecover bool
}

// Name returns the pool's device name.
func (p *Pool) Name() string { return p.name }

// Dev returns the pool's device number.
func (p *Pool) Dev() uint64 { return p.info.Dev }

// Table returns the pool's table as it was when the Pool was made (or last
// grown).
func (p *Pool) Table() PoolTable { return p.table }

// Sectors returns the length of the pool target in sectors.
func (p *Pool) Sectors() uint64 { return p.length }

// DataBlocks returns the size of the data device in data blocks, as the
// table gives it.
func (p *Pool) DataBlocks() uint64 { return p.length / uint64(p.table.BlockSize) }

// MetadataPath returns the path of the metadata device node.
func (p *Pool) MetadataPath() string { return p.metaPath }

// DataPath returns the path of the data device node.
func (p *Pool) DataPath() string { return p.dataPath }

// Control returns the device-mapper control the pool uses.
func (p *Pool) Control() *dm.Control { return p.ctl }

// blockDevice is a block device given by path, with its number and size.
type blockDevice struct {
	path string
	dev  uint64
	size int64
}

func statBlockDevice(path, what string) (blockDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return blockDevice{}, fmt.Errorf("%s device %s: %w", what, path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return blockDevice{}, fmt.Errorf("%s device %s: not a block device", what, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return blockDevice{}, fmt.Errorf("%s device: %w", what, err)
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return blockDevice{}, fmt.Errorf("%s device %s: size: %w", what, path, err)
	}
	return blockDevice{path: path, dev: uint64(st.Rdev), size: int64(n)}, nil
}

// checkNewName refuses a device name that exists (or the kernel would
// refuse).
func checkNewName(ctl *dm.Control, name string) error {
	_, err := ctl.Info(name)
	switch {
	case err == nil:
		return fmt.Errorf("device %q: %w", name, ErrExists)
	case errors.Is(err, unix.ENXIO):
		return nil
	}
	return err
}

// Create formats or checks the metadata device, then creates and activates
// a pool on the two devices.
func Create(ctl *dm.Control, name string, opts CreateOptions) (*Pool, error) {
	if opts.BlockSize != 0 && !thin.ValidDataBlockSize(opts.BlockSize) {
		return nil, fmt.Errorf("create pool %s: data block size %d: %w", name, opts.BlockSize, ErrBlockSize)
	}
	if opts.Format && opts.BlockSize == 0 {
		return nil, fmt.Errorf("create pool %s: formatting needs a data block size", name)
	}
	if n := len(opts.Features.args()); n > maxFeatures {
		return nil, fmt.Errorf("create pool %s: %d features: the kernel takes at most %d at once", name, n, maxFeatures)
	}
	if err := checkNewName(ctl, name); err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	meta, err := statBlockDevice(opts.MetadataDevice, "metadata")
	if err != nil {
		return nil, fmt.Errorf("create pool %s: %w", name, err)
	}
	data, err := statBlockDevice(opts.DataDevice, "data")
	if err != nil {
		return nil, fmt.Errorf("create pool %s: %w", name, err)
	}
	if meta.dev == data.dev {
		return nil, fmt.Errorf("create pool %s: the metadata and data devices are the same device", name)
	}
	bs := opts.BlockSize
	if opts.Format {
		blocks := opts.DataBlocks
		if blocks == 0 {
			blocks = uint64(data.size) / (uint64(bs) * 512)
		}
		if blocks == 0 || blocks*uint64(bs)*512 > uint64(data.size) {
			return nil, fmt.Errorf("create pool %s: data device %s (%d bytes) cannot hold %d blocks of %d sectors: %w",
				name, data.path, data.size, max(blocks, 1), bs, ErrTooSmall)
		}
		if err := formatMetadata(meta.path, bs, blocks, opts.MetadataBlocks); err != nil {
			return nil, fmt.Errorf("create pool %s: %w", name, err)
		}
		opts.DataBlocks = blocks
	} else {
		mbs, nrData, err := checkMetadata(meta.path, opts.Force, opts.SkipCheck)
		if err != nil {
			return nil, fmt.Errorf("create pool %s: %w", name, err)
		}
		if bs != 0 && bs != mbs {
			return nil, fmt.Errorf("create pool %s: data block size %d asked, the metadata has %d: %w", name, bs, mbs, ErrBlockSize)
		}
		bs = mbs
		if opts.DataBlocks == 0 {
			opts.DataBlocks = uint64(data.size) / (uint64(bs) * 512)
		}
		if opts.DataBlocks < nrData {
			return nil, fmt.Errorf("create pool %s: %d data blocks, the metadata records %d: %w", name, opts.DataBlocks, nrData, ErrTooSmall)
		}
		if opts.DataBlocks*uint64(bs)*512 > uint64(data.size) {
			return nil, fmt.Errorf("create pool %s: data device %s (%d bytes) is smaller than %d blocks of %d sectors: %w",
				name, data.path, data.size, opts.DataBlocks, bs, ErrTooSmall)
		}
	}
	table := PoolTable{MetadataDev: dm.DevString(meta.dev), DataDev: dm.DevString(data.dev), BlockSize: bs,
		LowWater: opts.LowWater, Features: opts.Features}
	length := opts.DataBlocks * uint64(bs)
	if _, err := ctl.Create(name, opts.UUID); err != nil {
		return nil, fmt.Errorf("create pool %s: %w", name, err)
	}
	undo := func(err error) (*Pool, error) {
		ctl.Remove(name)
		return nil, fmt.Errorf("create pool %s: %w%s", name, err, kernelHint(err))
	}
	if _, err := ctl.Load(name, []dm.Target{{Start: 0, Length: length, Type: "thin-pool", Params: table.String()}}, false); err != nil {
		return undo(err)
	}
	info, err := ctl.Resume(name, 0)
	if err != nil {
		return undo(err)
	}
	return &Pool{ctl: ctl, name: name, info: info, table: table, length: length, metaPath: meta.path, dataPath: data.path}, nil
}

// kernelHint points at the kernel log for errors whose reason only the
// kernel logs (a refused table says why in dmesg, not in the errno).
func kernelHint(err error) string {
	var de *dm.Error
	if errors.As(err, &de) && (de.Op == "DM_TABLE_LOAD" || de.Op == "DM_DEV_SUSPEND" || de.Op == "DM_TARGET_MSG") {
		return " (the kernel log says why: dmesg)"
	}
	return ""
}

// formatMetadata writes an empty pool to the metadata device.
func formatMetadata(path string, blockSize uint32, dataBlocks, metaBlocks uint64) error {
	d, err := OpenDevice(path, DeviceOptions{Write: true, Exclusive: true})
	if err != nil {
		return fmt.Errorf("format metadata: %w", err)
	}
	defer d.Close()
	md, err := thin.Format(d, d.Size(), &thin.FormatOptions{DataBlockSize: blockSize, NrDataBlocks: dataBlocks, MetadataBlocks: metaBlocks})
	if err != nil {
		return fmt.Errorf("format metadata %s: %w", path, err)
	}
	if err := md.Commit(); err != nil {
		md.Close()
		return fmt.Errorf("format metadata %s: %w", path, err)
	}
	if err := md.Close(); err != nil {
		return fmt.Errorf("format metadata %s: %w", path, err)
	}
	// Nothing went through the page cache, but a reader before us may
	// have left old blocks there.
	return dropPageCache(path)
}

// checkMetadata opens existing metadata exclusively (so no active pool uses
// it), refuses what the kernel cannot run or should not, checks it, and
// returns its data block size and data device size in blocks.
func checkMetadata(path string, force, superOnly bool) (uint32, uint64, error) {
	d, err := OpenDevice(path, DeviceOptions{Exclusive: true})
	if err != nil {
		return 0, 0, fmt.Errorf("metadata: %w", err)
	}
	defer d.Close()
	p, err := thin.NewPool(d, d.Size())
	if err != nil {
		if zero, _ := allZero(d); zero {
			return 0, 0, fmt.Errorf("metadata device %s: %w", path, ErrNotFormatted)
		}
		return 0, 0, fmt.Errorf("metadata device %s: %w", path, err)
	}
	sb := p.Superblock()
	if sb.Extended() || sb.IncompatFlags != 0 {
		return 0, 0, fmt.Errorf("metadata device %s: %w", path, ErrExtended)
	}
	if sb.NeedsCheck() && !force {
		return 0, 0, fmt.Errorf("metadata device %s: %w", path, ErrNeedsCheck)
	}
	if !thin.ValidDataBlockSize(sb.DataBlockSize) {
		return 0, 0, fmt.Errorf("metadata device %s: data block size %d: %w", path, sb.DataBlockSize, ErrBlockSize)
	}
	var findings []string
	// Not cancellable: a pool is checked when it is set up, as LVM does.
	sum, err := check.Pool(context.Background(), p, check.Options{SuperblockOnly: superOnly}, func(f check.Finding) {
		if len(findings) < 5 {
			findings = append(findings, f.String())
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if !sum.OK(false) {
		return 0, 0, fmt.Errorf("metadata device %s: %w (%d fatal, %d other findings: %s)", path, ErrCheckFailed,
			sum.Fatal, sum.NonFatal, strings.Join(findings, "; "))
	}
	return sb.DataBlockSize, p.NrDataBlocks(), nil
}

func allZero(d *Device) (bool, error) {
	b := make([]byte, MetadataBlockSize)
	if _, err := d.ReadAt(b, 0); err != nil {
		return false, err
	}
	return bytes.Count(b, []byte{0}) == len(b), nil
}

// Open attaches to the active pool device name. Unless opts.NoRecover, it
// resumes the pool and its thin devices if they are suspended — what a
// snapshot interrupted by SIGKILL leaves — and lists them in Recovered.
func Open(ctl *dm.Control, name string, opts *OpenOptions) (*Pool, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	p := &Pool{ctl: ctl, name: name}
	if err := p.reload(); err != nil {
		return nil, err
	}
	if !opts.NoRecover {
		rec, err := p.Recover()
		p.Recovered = rec
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// reload reads the pool's info and table from the kernel.
func (p *Pool) reload() error {
	info, table, err := p.ctl.Table(p.name)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.name, err)
	}
	if len(table) != 1 || table[0].Type != "thin-pool" {
		return fmt.Errorf("pool %s: %w", p.name, ErrNotPool)
	}
	t, err := ParsePoolTable(table[0].Params)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.name, err)
	}
	p.info, p.table, p.length = info, t, table[0].Length
	if p.metaPath == "" {
		if p.metaPath, err = nodeOf(p.ctl, t.MetadataDev); err != nil {
			return fmt.Errorf("pool %s: metadata device: %w", p.name, err)
		}
	}
	if p.dataPath == "" {
		if p.dataPath, err = nodeOf(p.ctl, t.DataDev); err != nil {
			return fmt.Errorf("pool %s: data device: %w", p.name, err)
		}
	}
	return nil
}

// nodeOf finds a block-device node for "major:minor": a device-mapper
// device's own node, or the node sysfs names (/sys/dev/block/M:m/uevent).
func nodeOf(ctl *dm.Control, devs string) (string, error) {
	var ma, mi uint32
	if _, err := fmt.Sscanf(devs, "%d:%d", &ma, &mi); err != nil {
		return devs, nil // a path in the table
	}
	dev := dm.Mkdev(ma, mi)
	if info, err := ctl.InfoByDev(dev); err == nil {
		return ctl.NodeOf(info)
	}
	b, err := os.ReadFile(filepath.Join("/sys/dev/block", devs, "uevent"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			p := filepath.Join("/dev", n)
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil || uint64(st.Rdev) != dev {
				return "", fmt.Errorf("%s is not block device %s", p, devs)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("no device node for %s", devs)
}

// Status returns the pool's status. The kernel commits the pool's
// metadata first, so the counts are current.
func (p *Pool) Status() (PoolStatus, error) { return p.status(false) }

func (p *Pool) status(noFlush bool) (PoolStatus, error) {
	_, st, err := p.ctl.Status(p.name, noFlush)
	if err != nil {
		return PoolStatus{}, fmt.Errorf("pool %s: %w", p.name, err)
	}
	if len(st) != 1 || st[0].Type != "thin-pool" {
		return PoolStatus{}, fmt.Errorf("pool %s: %w", p.name, ErrNotPool)
	}
	s, err := ParsePoolStatus(st[0].Params)
	if err != nil {
		return PoolStatus{}, fmt.Errorf("pool %s: %w", p.name, err)
	}
	return s, nil
}

// Deactivate removes the pool device, committing its metadata. Thin
// devices of the pool must have been deactivated first.
func (p *Pool) Deactivate() error {
	thins, err := p.Thins()
	if err != nil {
		return err
	}
	if len(thins) > 0 {
		var names []string
		for _, t := range thins {
			names = append(names, t.Name)
		}
		return fmt.Errorf("deactivate pool %s: thin devices %s are active: %w", p.name, strings.Join(names, ", "), ErrBusy)
	}
	// A suspend commits the metadata (pool_postsuspend); the removal then
	// has nothing left to write.
	if _, err := p.ctl.Suspend(p.name, dm.SkipLockfs); err != nil {
		return fmt.Errorf("deactivate pool %s: %w", p.name, err)
	}
	if err := p.ctl.Remove(p.name); err != nil {
		p.ctl.Resume(p.name, 0)
		return fmt.Errorf("deactivate pool %s: %w", p.name, err)
	}
	return nil
}

// message sends a message to the pool and maps the kernel's refusals.
func (p *Pool) message(msg string) error {
	if _, err := p.ctl.Message(p.name, 0, msg); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("pool %s: %s: %w (%w)", p.name, msg, err, ErrReadOnly)
		}
		return fmt.Errorf("pool %s: %s: %w", p.name, msg, err)
	}
	return nil
}

func checkID(id uint64) error {
	if id > MaxThinID {
		return fmt.Errorf("thin id %d: %w", id, ErrBadID)
	}
	return nil
}

// CreateThin creates an empty thin device id in the pool.
func (p *Pool) CreateThin(id uint64) error {
	if err := checkID(id); err != nil {
		return err
	}
	err := p.message(fmt.Sprintf("create_thin %d", id))
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%w: thin %d %w", err, id, ErrExists)
	}
	return err
}

// DeleteThin deletes thin device id and frees the data only it used.
// An active thin cannot be deleted.
func (p *Pool) DeleteThin(id uint64) error {
	if err := checkID(id); err != nil {
		return err
	}
	thins, err := p.Thins()
	if err != nil {
		return err
	}
	for _, t := range thins {
		if t.ID == id {
			return fmt.Errorf("delete thin %d: active as %s: %w", id, t.Name, ErrBusy)
		}
	}
	return p.message(fmt.Sprintf("delete %d", id))
}

// SetTransactionID sets the pool's transaction id to new if it is old (a
// compare-and-swap). A mismatch is a *TransactionError.
func (p *Pool) SetTransactionID(old, new uint64) error {
	err := p.message(fmt.Sprintf("set_transaction_id %d %d", old, new))
	if err != nil && errors.Is(err, unix.EINVAL) {
		if s, serr := p.Status(); serr == nil && s.TransactionID != old {
			return fmt.Errorf("pool %s: %w", p.name, &TransactionError{Want: old, Got: s.TransactionID})
		}
	}
	return err
}
