package dm

// Prepared is an ioctl whose buffer was built in advance. Run issues it
// without allocating (unless it fails), without looking anything up and
// without touching the file system, so it can run while a device that the
// program might otherwise touch is suspended. A Prepared may be run any
// number of times; it is not safe for concurrent use.
type Prepared struct {
	c    *Control
	cmd  int
	dev  string
	tmpl []byte // the request as built
	buf  []byte // the request as issued (the kernel overwrites it)
}

// PrepareSuspend prepares a Suspend of the device.
func (c *Control) PrepareSuspend(name string, f SuspendFlags) (*Prepared, error) {
	if err := checkName(cmdDevSuspend, name); err != nil {
		return nil, err
	}
	return c.prepare(&request{cmd: cmdDevSuspend, name: name, flags: FlagSuspend | Flags(f)}), nil
}

// PrepareResume prepares a Resume of the device.
func (c *Control) PrepareResume(name string, f SuspendFlags) (*Prepared, error) {
	if err := checkName(cmdDevSuspend, name); err != nil {
		return nil, err
	}
	return c.prepare(&request{cmd: cmdDevSuspend, name: name, flags: Flags(f)}), nil
}

// PrepareMessage prepares a Message to the device; the target's answer, if
// any, is not returned.
func (c *Control) PrepareMessage(name string, sector uint64, msg string) (*Prepared, error) {
	r, err := messageRequest(name, sector, msg)
	if err != nil {
		return nil, err
	}
	return c.prepare(r), nil
}

func (c *Control) prepare(r *request) *Prepared {
	size := headerSize + align8(len(r.in)) + r.extra
	t := r.build(size)
	return &Prepared{c: c, cmd: r.cmd, dev: r.device(), tmpl: t, buf: make([]byte, len(t))}
}

// Run issues the prepared ioctl.
func (p *Prepared) Run() error {
	copy(p.buf, p.tmpl)
	if err := p.c.ioctl(p.cmd, p.buf); err != nil {
		return opError(p.cmd, p.dev, err)
	}
	return nil
}

// Flags returns the flags word of the last reply (after a successful Run).
func (p *Prepared) Flags() Flags { return Flags(order.Uint32(p.buf[offFlags:])) }
