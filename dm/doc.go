// Package dm is a device-mapper client: the ioctls of
// /dev/mapper/control, in pure Go, without libdevmapper or dmsetup.
//
// A Control is an open control device. Its methods create and remove
// devices, load tables, suspend and resume, query info, status and tables,
// send target messages, wait for events and list the loaded target types.
// Every error is an *Error naming the ioctl, the device and the errno
// (usable with errors.Is, as in errors.Is(err, unix.ENXIO)).
//
// Prepared calls (PrepareSuspend, PrepareResume, PrepareMessage) build their
// ioctl buffers ahead of time and then run without allocating, looking
// anything up or touching the file system: they are for critical sections
// such as the window in which a thin origin is suspended for a snapshot.
//
// Target parameters and status lines are opaque strings here; package live
// gives the thin-pool and thin targets their meaning. This package sits at
// the bottom of the project, beside transaction: it imports no package of
// the metadata format. The structures it encodes are described in the
// project's docs/LIVE.md, with where they were confirmed.
package dm
