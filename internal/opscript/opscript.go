// Package opscript is the one operation language of the tests: the
// datadriven scripts (thin/testdata/*.txt, blob/testdata/*.txt), the rapid
// model tests, which log a failing case in it so that it can be pasted
// into a script, and the generator's record (gen.Record.WriteScript).
// Package oprun runs it.
//
// An operation is one line of words: a name and its arguments. Numbers
// are decimal; a blob is hex (its trailing zero bytes may be left out). A
// line starting with # is a comment. The names of the pool's own changes
// are those of the kernel's messages and of "thinmeta message":
//
//	format data=N [meta=BLOCKS] [block_size=SECTORS] [extended blob_size=B [index_bytes=K]]
//	create_thin ID [BLOB]            create an empty thin
//	create_snap ID ORIGIN [BLOB]     create ID as a snapshot of ORIGIN
//	new_thin [BLOB]                  extended: create a thin with the next id; prints "id N"
//	new_snap ORIGIN [BLOB]           extended: snapshot with the next id; prints "id N"
//	allocate_id                      extended: hand out an id; prints "id N"
//	set_blob ID BLOB                 extended: replace a thin's blob
//	delete ID
//	map ID BEGIN COUNT               map BEGIN.. to newly allocated data blocks
//	map_to ID VBLOCK DBLOCK [COUNT]  map VBLOCK.. to DBLOCK.. (adding a reference to each)
//	unmap ID BEGIN END               remove the mappings in [BEGIN, END)
//	set_transaction_id CUR NEW
//	reserve_metadata_snap            part of the transaction (durable at commit)
//	release_metadata_snap
//	resize_data N
//	commit | abort | reopen          reopen: close the writer, open the device again
//	next_id | count                  extended: print NextID, the number of thins
//
// Views, named by the script:
//
//	open NAME committed              the writer's last commit (Metadata.Committed)
//	open NAME view                   the transaction in progress (Metadata.View)
//	open NAME file                   the device opened again by path (thin.Open)
//	open NAME snapshot OF            the metadata snapshot of view OF
//	close NAME | close writer
//	dump [NAME]                      thinmeta's dump of a view (default: the device as committed)
//	check [NAME]                     check.Pool of a view: "ok" or the findings
//	thin_dump [-m]                   thin_dump 0.9.0 of the device (1.1.0 must describe the same pool)
//	space_maps [NAME]                the sizes of a view's data and metadata space maps
//
// A failed operation prints "error: " and the sentinel it wraps (such as
// ErrExists), or its message when it wraps none.
package opscript

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Op is one operation: a name and its arguments.
type Op struct {
	Name string
	Args []string
}

// String formats the operation as a line of the language.
func (o Op) String() string {
	if len(o.Args) == 0 {
		return o.Name
	}
	return o.Name + " " + strings.Join(o.Args, " ")
}

// Parse reads one line; ok is false for a blank line or a comment.
func Parse(line string) (op Op, ok bool) {
	f := strings.Fields(line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return Op{}, false
	}
	return Op{Name: f[0], Args: f[1:]}, true
}

// Make builds an operation from a name and arguments of any kind:
// integers in decimal, []byte as a blob, anything else by fmt.
func Make(name string, args ...any) Op {
	o := Op{Name: name}
	for _, a := range args {
		var s string
		switch v := a.(type) {
		case []byte:
			s = Blob(v)
		case uint64:
			s = strconv.FormatUint(v, 10)
		case uint32:
			s = strconv.FormatUint(uint64(v), 10)
		case int:
			s = strconv.Itoa(v)
		default:
			s = fmt.Sprint(v)
		}
		o.Args = append(o.Args, s)
	}
	return o
}

// Blob formats a blob: hex without its trailing zero bytes, "0" for an
// all-zero blob.
func Blob(b []byte) string {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	if n == 0 {
		return "0"
	}
	return hex.EncodeToString(b[:n])
}

// ParseBlob reads a blob written by Blob ("0": all zeros), padded with
// zeros to size if size > 0.
func ParseBlob(s string, size int) ([]byte, error) {
	var b []byte
	if s != "0" {
		var err error
		if b, err = hex.DecodeString(s); err != nil {
			return nil, fmt.Errorf("blob %q: %v", s, err)
		}
	}
	if len(b) < size {
		b = append(b, make([]byte, size-len(b))...)
	}
	return b, nil
}

// Script is a sequence of operations.
type Script []Op

// Add appends an operation built by Make.
func (s *Script) Add(name string, args ...any) { *s = append(*s, Make(name, args...)) }

// String formats the script, one operation a line.
func (s Script) String() string {
	var b strings.Builder
	for _, o := range s {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
}
