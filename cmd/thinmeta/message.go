package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/spacemap"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

var messageCommand = &command{
	name:    "message",
	summary: "change a pool offline: create, snapshot, delete thins, map, ... (one commit)",
	usage: `Usage: thinmeta message [options] METADATA MESSAGE [ARGS] [MESSAGE [ARGS]]...

Apply one or more messages to the pool in METADATA (a metadata device or
file that no active pool is using) and commit them as one transaction:
either all of them take effect or none does, even if the machine crashes.
The first six are the kernel's own pool messages (dmsetup message), with
the same meaning; the rest are offline extensions.

Messages:
  create_thin ID                 create an empty thin device
  create_snap ID ORIGIN          create thin ID as a snapshot of ORIGIN
  delete ID                      delete a thin device and free what only it used
  set_transaction_id CUR NEW     set the transaction id to NEW if it is CUR
  reserve_metadata_snap          take a metadata snapshot (held root)
  release_metadata_snap          drop the metadata snapshot
  map ID BEGIN COUNT             map virtual blocks BEGIN..BEGIN+COUNT-1 of ID
                                 to newly allocated data blocks (the range
                                 must end below 2^64)
  map_to ID VBLOCK DATA_BLOCK    map one virtual block to a given data block
                                 (adding a reference to it); refused if ID
                                 maps DATA_BLOCK at another virtual block,
                                 which the kernel never does and
                                 thin_check 1.1.0 rejects
  unmap ID BEGIN END             remove the mappings of ID in [BEGIN, END)
                                 (END at most 2^64-1: the last virtual
                                 block, which the kernel cannot address,
                                 goes only with its thin)
  resize_data N                  grow the data device to N data blocks (its
                                 space map must fit the free metadata
                                 blocks)
  resize_metadata N              grow the metadata space map to N blocks (at
                                 most the device's, and 4161600)
  set_needs_check                set the needs_check flag
  clear_needs_check              clear the needs_check flag

Thin ids go up to 16777215 (the kernel's limit). Before anything is
written the pool is checked (as "thinmeta check"): damaged metadata is
never written. A pool with needs_check set is refused unless --force.

Options:
  -f, --force          write even though needs_check is set
      --no-verify      skip the check before writing (only for metadata
                       known to be sound; its cost grows with the pool)
      --ignore-non-fatal-errors
                       accept leaks and under-populated nodes in the check
  -q, --quiet          print nothing on success
  -h, --help           show this help

Exit status: 0 committed, 1 nothing was changed (the reason is printed),
2 bad usage.
`,
}

func init() { messageCommand.run = runMessage }

type message struct {
	name string
	args []uint64
}

// messageSynopses are the messages' synopses, as the help shows them;
// every argument is required.
var messageSynopses = map[string]string{
	"create_thin": "create_thin ID", "create_snap": "create_snap ID ORIGIN", "delete": "delete ID",
	"set_transaction_id":    "set_transaction_id CUR NEW",
	"reserve_metadata_snap": "reserve_metadata_snap", "release_metadata_snap": "release_metadata_snap",
	"map": "map ID BEGIN COUNT", "map_to": "map_to ID VBLOCK DATA_BLOCK", "unmap": "unmap ID BEGIN END",
	"resize_data": "resize_data N", "resize_metadata": "resize_metadata N",
	"set_needs_check": "set_needs_check", "clear_needs_check": "clear_needs_check",
}

func parseMessages(tokens []string) ([]message, error) {
	var out []message
	for len(tokens) > 0 {
		name := strings.ToLower(tokens[0])
		synopsis, ok := messageSynopses[name]
		if !ok {
			return nil, fmt.Errorf("unknown message %q", tokens[0])
		}
		n, _ := synopsisArity(synopsis)
		if len(tokens) < 1+n {
			return nil, fmt.Errorf("%s needs %d argument(s): %s", name, n, synopsis)
		}
		m := message{name: name}
		for _, a := range tokens[1 : 1+n] {
			v, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: bad number %q", name, a)
			}
			m.args = append(m.args, v)
		}
		if err := vetMessage(m); err != nil {
			return nil, err
		}
		out = append(out, m)
		tokens = tokens[1+n:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no message given")
	}
	return out, nil
}

func runMessage(e *env, args []string) int {
	c := messageCommand
	fs := e.flagSet(c)
	var force, noVerify, ignore, quiet bool
	boolFlag(fs, &force, "", "f", "force")
	boolFlag(fs, &noVerify, "", "no-verify")
	boolFlag(fs, &ignore, "", "ignore-non-fatal-errors")
	boolFlag(fs, &quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) < 2 {
		return e.usageError(c, "expected METADATA and at least one MESSAGE")
	}
	msgs, err := parseMessages(pos[1:])
	if err != nil {
		return e.usageError(c, "%v", err)
	}
	md, err := openWriter(pos[0], force, noVerify, ignore)
	if err != nil {
		return e.fail(c, err)
	}
	defer md.Close()
	for _, m := range msgs {
		if err := apply(md, m); err != nil {
			md.Abort()
			return e.fail(c, fmt.Errorf("%s: %w (nothing was changed)", m.name, err))
		}
	}
	if err := md.Commit(); err != nil {
		return e.fail(c, fmt.Errorf("commit: %w", err))
	}
	if !quiet {
		fmt.Fprintf(e.stderr, "committed %d message(s); transaction id %d\n", len(msgs), md.TransactionID())
	}
	return exitOK
}

// vetMessage refuses, as bad usage, arguments that no pool could accept:
// block ranges that run past 2^64 or end before they start, and sizes or
// block numbers beyond what the format can describe.
func vetMessage(m message) error {
	a := m.args
	switch m.name {
	case "map":
		if _, err := thin.BlockRange(a[1], a[2]); err != nil {
			return fmt.Errorf("map %d %d %d: %v", a[0], a[1], a[2], err)
		}
	case "unmap":
		if a[2] < a[1] {
			return fmt.Errorf("unmap %d %d %d: END is before BEGIN", a[0], a[1], a[2])
		}
	case "map_to":
		if a[2] > thin.MaxDataBlock {
			return fmt.Errorf("map_to %d %d %d: data block beyond the format's limit of %d", a[0], a[1], a[2], uint64(thin.MaxDataBlock))
		}
	case "resize_data":
		if most := thin.MaxDataBlocks(spacemap.MaxMetadataBlocks); a[0] > most {
			return fmt.Errorf("resize_data %d: more data blocks than any pool can describe (%d)", a[0], most)
		}
	case "resize_metadata":
		if a[0] > spacemap.MaxMetadataBlocks {
			return fmt.Errorf("resize_metadata %d: more metadata blocks than a space map can track (%d)", a[0], uint64(spacemap.MaxMetadataBlocks))
		}
	}
	return nil
}

func apply(md *thin.Metadata, m message) error {
	a := m.args
	switch m.name {
	case "create_thin":
		return md.CreateThin(a[0])
	case "create_snap":
		return md.CreateSnapshot(a[0], a[1])
	case "delete":
		return md.Delete(a[0])
	case "set_transaction_id":
		return md.SetTransactionID(a[0], a[1])
	case "reserve_metadata_snap":
		// Within the batch's transaction: the batch stays one commit.
		return md.ReserveMetadataSnapshot()
	case "release_metadata_snap":
		return md.ReleaseMetadataSnapshot()
	case "map":
		return md.MapRange(a[0], a[1], a[2])
	case "map_to":
		if err := md.DataSpaceMap().Inc(a[2]); err != nil {
			return err
		}
		return md.MapTo(a[0], a[1], a[2])
	case "unmap":
		_, err := md.Unmap(a[0], a[1], a[2])
		return err
	case "resize_data":
		return md.ResizeData(a[0])
	case "resize_metadata":
		return md.ResizeMetadata(a[0])
	case "set_needs_check":
		md.SetNeedsCheck(true)
		return nil
	case "clear_needs_check":
		md.SetNeedsCheck(false)
		return nil
	}
	return fmt.Errorf("unknown message %q", m.name)
}

// openWriter opens a pool for changes, exclusively, checking it first
// (as "thinmeta check") unless noVerify: damaged metadata is never written.
func openWriter(path string, force, noVerify, ignoreNonFatal bool) (*thin.Metadata, error) {
	var verify func(*thin.Pool) error
	if !noVerify {
		verify = check.Verifier(context.Background(), ignoreNonFatal)
	}
	return thin.OpenMetadata(path, &thin.WriteOptions{Force: force, Verify: verify, Wait: waitLocks})
}
