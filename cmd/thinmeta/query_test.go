package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/btree"
	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/tptest"
	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/transaction"
)

// queryRun runs one command with captured output.
func queryRun(c *command, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, isTerminal: func(*os.File) bool { return false }}
	code = c.run(e, args)
	return code, out.String(), errb.String()
}

// queryCase is one invocation of a thin_* tool and the thinmeta command
// that must behave the same.
type queryCase struct {
	tool string
	args []string // options, shared by both (the image is appended)
	cmd  *command
}

var queryCases = []queryCase{
	{"thin_ls", nil, lsCommand},
	{"thin_ls", []string{"-m"}, lsCommand},
	{"thin_ls", []string{"-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,TRANSACTION,CREATE_TIME,SNAP_TIME"}, lsCommand},
	{"thin_ls", []string{"--no-headers", "--format", "EXCLUSIVE,DEV", "-m"}, lsCommand},
	{"thin_ls", []string{"--format=SHARED_BYTES,", "--no-headers"}, lsCommand},
	{"thin_ls", []string{"-o", ""}, lsCommand},
	{"thin_rmap", []string{"--region", "0..100000000"}, rmapCommand},
	{"thin_rmap", []string{"--region", "10..20", "--region=5000..5500", "--region", "15..30"}, rmapCommand},
	{"thin_delta", []string{"--thin1", "1", "--thin2", "2"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "2", "--snap2", "1", "--verbose", "-m"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "1", "--thin2", "3", "--metadata-snap"}, deltaCommand},
	{"thin_delta", []string{"--snap1", "1", "--thin2", "77"}, deltaCommand},
}

// Each query command on every fixture gives thin_*'s standard output byte
// for byte, fails exactly where the tool fails, and leaves the image as it
// was. thinmeta reads the
// packed fixture directly; the tools read the unpacked image.
func TestQueryCommandsFixtures(t *testing.T) {
	for _, f := range tptest.Fixtures(t) {
		t.Run(tptest.Name(f), func(t *testing.T) {
			img := tptest.Unpack(t, f)
			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, qc := range queryCases {
				want := tptest.Run(t, qc.tool, append(append([]string(nil), qc.args...), img)...)
				for _, in := range []string{img, f} {
					code, out, errs := queryRun(qc.cmd, append(append([]string(nil), qc.args...), in)...)
					if (code == 0) != (want.Code == 0) || code == exitUsage {
						t.Fatalf("%s %v: tool exit %d (%s), thinmeta %s exit %d (%s)", qc.tool, qc.args, want.Code, bytes.TrimSpace(want.Stderr), qc.cmd.name, code, errs)
					}
					if out != string(want.Stdout) {
						t.Fatalf("%s %v on %s: output differs\n tool:\n%s\n thinmeta:\n%s", qc.tool, qc.args, in, want.Stdout, out)
					}
				}
			}
			// The query commands are read-only.
			if after, err := os.ReadFile(img); err != nil || !bytes.Equal(before, after) {
				t.Errorf("the image changed (%v)", err)
			}
		})
	}
}

// With a block number, -m must name the block the metadata snapshot is at.
func TestDeltaMetadataSnapBlock(t *testing.T) {
	var f string
	for _, p := range tptest.Fixtures(t) {
		if tptest.Name(p) == "tmeta_with_metadata_snap" {
			f = p
		}
	}
	if f == "" {
		t.Skip("fixture tmeta_with_metadata_snap missing")
	}
	img := tptest.Unpack(t, f)
	for _, m := range []string{"-m6", "-m7", "--metadata-snap=6", "--metadata-snap=5"} {
		args := []string{"--thin1", "1", "--thin2", "2", m, img}
		want := tptest.Run(t, "thin_delta", args...)
		code, out, errs := queryRun(deltaCommand, args...)
		if (code == 0) != (want.Code == 0) || out != string(want.Stdout) {
			t.Errorf("%s: tool exit %d, thinmeta exit %d (%s); same output: %v", m, want.Code, code, errs, out == string(want.Stdout))
		}
	}
}

// Bad command lines are usage errors (exit 2) with a message, and print
// nothing on standard output.
func TestQueryUsageErrors(t *testing.T) {
	img := "/nonexistent.img"
	cases := []struct {
		cmd  *command
		args []string
	}{
		{lsCommand, nil},
		{lsCommand, []string{"-o", "DEV,FOO", img}},
		{lsCommand, []string{"-o", ",DEV", img}},
		{lsCommand, []string{"--bogus", img}},
		{lsCommand, []string{img, img}},
		{rmapCommand, []string{img}},
		{rmapCommand, []string{"--region", "5..5", img}},
		{rmapCommand, []string{"--region", "5-9", img}},
		{rmapCommand, []string{"--region", "1..2"}},
		{deltaCommand, []string{"--thin1", "1", img}},
		{deltaCommand, []string{"--thin2", "1", img}},
		{deltaCommand, []string{"--thin1", "x", "--thin2", "1", img}},
		{deltaCommand, []string{"--thin1", "1", "--thin2", "2", "-mx", img}},
		{deltaCommand, []string{"--thin1", "1", "--thin2", "2"}},
	}
	for _, tc := range cases {
		code, out, errs := queryRun(tc.cmd, tc.args...)
		if code != exitUsage || out != "" || errs == "" {
			t.Errorf("%s %v: exit %d, stdout %q, stderr %q; want exit 2 and a message", tc.cmd.name, tc.args, code, out, errs)
		}
	}
	for _, c := range []*command{lsCommand, rmapCommand, deltaCommand} {
		code, out, _ := queryRun(c, "--help")
		if code != exitOK || out != c.usage {
			t.Errorf("%s --help: exit %d", c.name, code)
		}
	}
	code, _, errs := queryRun(lsCommand, img)
	if code != exitFail || errs == "" {
		t.Errorf("ls of a missing file: exit %d, stderr %q", code, errs)
	}
}

// treeNodes returns the blocks of every node of the details tree and the
// mapping trees of the pool in img.
func treeNodes(t *testing.T, img string) []uint64 {
	t.Helper()
	p, err := thin.Open(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var blocks []uint64
	add := func(b uint64, _ btree.Node) error { blocks = append(blocks, b); return nil }
	if err := p.DetailsTree().WalkNodes(add); err != nil {
		t.Fatal(err)
	}
	if err := p.MappingTree().WalkNodes(add); err != nil {
		t.Fatal(err)
	}
	for dr, err := range p.DeviceRoots() {
		if err != nil {
			t.Fatal(err)
		}
		if err := p.DeviceTree(dr.Root).WalkNodes(add); err != nil {
			t.Fatal(err)
		}
	}
	return blocks
}

// mutateNode damages one field of the B-tree node at block b of the image
// and reseals its checksum, so that the damage gets past the validator.
func mutateNode(rng *rand.Rand, img []byte, b uint64) string {
	blk := img[b*4096 : (b+1)*4096]
	le := binary.LittleEndian
	n := btree.Node(blk)
	nr, me := n.NrEntries(), n.MaxEntries()
	var what string
	switch k := rng.IntN(7); {
	case k == 0:
		v := uint32(rng.IntN(me + 2))
		le.PutUint32(blk[16:], v)
		what = fmt.Sprintf("nr_entries %d->%d", nr, v)
	case k == 1 && nr > 0:
		i := rng.IntN(nr)
		v := rng.Uint64N(1 << uint(rng.IntN(64)))
		le.PutUint64(blk[btree.HeaderSize+8*i:], v)
		what = fmt.Sprintf("key %d := %d", i, v)
	case k == 2 && nr > 0:
		i := rng.IntN(nr)
		off := btree.HeaderSize + 8*me + 8*i
		le.PutUint64(blk[off:], le.Uint64(blk[off:])^1<<uint(rng.IntN(64)))
		what = fmt.Sprintf("value %d, a bit flipped", i)
	case k == 3:
		v := uint32(rng.IntN(300))
		le.PutUint32(blk[20:], v)
		what = fmt.Sprintf("max_entries %d->%d", me, v)
	case k == 4:
		le.PutUint32(blk[4:], uint32(rng.IntN(4)))
		what = "flags"
	case k == 5:
		le.PutUint32(blk[24:], uint32(rng.IntN(30)))
		what = "value_size"
	default:
		le.PutUint64(blk[8:], rng.Uint64N(1<<20))
		transaction.Seal(blk, le.Uint64(blk[8:]), transaction.SaltNode)
		return "block number"
	}
	btree.Validator.Prepare(blk, b)
	return fmt.Sprintf("block %d: %s", b, what)
}

// runWithTimeout runs a tool like tptest.Run but gives up after a few
// seconds (thin_ls loops forever on data blocks beyond 2^30); done is false
// then.
func runWithTimeout(t *testing.T, name string, args ...string) (r tptest.Result, done bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tptest.Need(t, name), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return tptest.Result{}, false
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return tptest.Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), Code: code}, true
}

// Damaged trees (a node field changed, checksum resealed) never make ls,
// rmap or delta panic; each fails whenever its tool fails, and otherwise
// prints what the tool prints. Where thinmeta's checks are stricter than
// the tool's it may fail alone: those cases are only logged.
func TestQueryCommandsDamaged(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	pool := genpool.Generate(rng, genpool.Spec{Devices: 6, MinMappings: 200, MaxMappings: 3000, MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.5, RewriteFraction: 0.3})
	img, _ := genpool.Restore(t, pool)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	nodes := treeNodes(t, img)
	bad := filepath.Join(t.TempDir(), "bad.img")
	d1, d2 := fmt.Sprint(pool.Devices[0].ID), fmt.Sprint(pool.Devices[len(pool.Devices)-1].ID)
	cases := []queryCase{
		{"thin_ls", []string{"-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED,SNAP_TIME"}, lsCommand},
		{"thin_rmap", []string{"--region", "0..1000000000"}, rmapCommand},
		{"thin_delta", []string{"--thin1", d1, "--thin2", d2, "--verbose"}, deltaCommand},
	}
	stricter := 0
	for i := range 40 {
		data := append([]byte(nil), orig...)
		what := mutateNode(rng, data, nodes[rng.IntN(len(nodes))])
		if err := os.WriteFile(bad, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, qc := range cases {
			args := append(append([]string(nil), qc.args...), bad)
			code, out, _ := queryRun(qc.cmd, args...)
			want, done := runWithTimeout(t, qc.tool, args...)
			switch {
			case !done:
				t.Logf("case %d (%s): %s hangs; thinmeta exit %d", i, what, qc.tool, code)
			case code == exitOK && want.Code != 0:
				t.Errorf("case %d (%s): %s fails (%s), thinmeta %s succeeds", i, what, qc.tool, bytes.TrimSpace(want.Stderr), qc.cmd.name)
			case code == exitOK && out != string(want.Stdout):
				t.Errorf("case %d (%s): %s output differs", i, what, qc.tool)
			case code != exitOK && want.Code == 0:
				stricter++
				t.Logf("case %d (%s): thinmeta %s fails where %s succeeds", i, what, qc.cmd.name, qc.tool)
			}
		}
	}
	t.Logf("%d of %d runs on damaged images failed in thinmeta only", stricter, 40*len(cases))
}
