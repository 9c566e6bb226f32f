package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
)

// A FIFO as the input of a reading command is refused at once (it hung
// check, dump, ls and blob list forever: opening a FIFO blocks until a
// writer comes).
func TestFIFOInput(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	for _, args := range [][]string{
		{"check", fifo}, {"dump", fifo}, {"ls", fifo}, {"blob", "list", fifo},
		{"rmap", "--region", "0..1", fifo}, {"pack", "-i", fifo, "-o", fifo + ".pack"},
		{"unpack", "-i", fifo, "-o", fifo + ".img"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], args...)
		cmd.Env = append(os.Environ(), asCLI+"=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%v on a FIFO hung", args)
		}
		if code := exitCode(t, err); code != exitFail || !strings.Contains(stderr.String(), fifo) {
			t.Fatalf("%v on a FIFO: exit %d, %q; want refused", args, code, stderr.String())
		}
	}
}

// The frame of 1.5 GiB of zeros (6 MB): check, dump and ls say
// block 0 is not a superblock in little memory (they took 1 GB of RSS, and
// a larger frame a temporary file, to say so).
func TestLZ4ZerosRSS(t *testing.T) {
	var z bytes.Buffer
	zw := lz4.NewWriter(&z)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(false)); err != nil {
		t.Fatal(err)
	}
	zw.Write(make([]byte, 4<<20))
	zw.Close()
	b := z.Bytes() // magic FLG BD HC (7 bytes), one block, end mark
	var frame bytes.Buffer
	frame.Write(b[:7])
	for range 384 {
		frame.Write(b[7 : len(b)-4])
	}
	frame.Write([]byte{0, 0, 0, 0})
	path := filepath.Join(t.TempDir(), "zeros.lz4")
	if err := os.WriteFile(path, frame.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"check", "dump", "ls"} {
		r := runProcess(t, nil, c, path)
		if r.code != exitFail || !strings.Contains(r.stderr, "block 0") {
			t.Fatalf("%s of zeros: exit %d, %q", c, r.code, r.stderr)
		}
		if r.rss == 0 || r.rss > 64<<20 {
			t.Fatalf("%s of a frame of 1.5 GiB of zeros: peak RSS %d bytes", c, r.rss)
		}
	}
}
