package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinmeta/thinmeta/dm"
)

// TestGuestPoolCLI runs the pool verbs on the real kernel, inside the
// kernel oracle's guest (started by live.TestKernelGuest with
// THINMETA_GUEST=1; it skips elsewhere): every verb, its exit codes and its
// output, the dump of a held metadata snapshot against the guest's
// thin_dump -m, and recovery of a suspended thin. Its region is 8: vda from
// 64 MiB, vdb from 512 MiB.
func TestGuestPoolCLI(t *testing.T) {
	if os.Getenv("THINMETA_GUEST") == "" {
		t.Skip("runs in the kernel oracle guest (THINMETA_GUEST=1), from live.TestKernelGuest")
	}
	ctl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	const metaOff, metaBytes, dataOff, dataBytes = 64 << 20, 8 << 20, 512 << 20, 16 << 20
	linear := func(name, disk string, off, n int64) string {
		var st unix.Stat_t
		if err := unix.Stat(disk, &st); err != nil {
			t.Fatal(err)
		}
		if _, err := ctl.Create(name, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ctl.Remove(name) })
		if _, err := ctl.Load(name, []dm.Target{{Length: uint64(n / 512), Type: "linear",
			Params: fmt.Sprintf("%s %d", dm.DevString(uint64(st.Rdev)), off/512)}}, false); err != nil {
			t.Fatal(err)
		}
		info, err := ctl.Resume(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ctl.NodeOf(info)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	meta := linear("cli-meta", "/dev/vda", metaOff, metaBytes)
	data := linear("cli-data", "/dev/vdb", dataOff, dataBytes)
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, stderr := runCLI(append([]string{"pool"}, args...)...)
		if code != want {
			t.Fatalf("thinmeta pool %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, stderr)
		}
		return out + stderr
	}
	const pool = "cli-pool"
	t.Cleanup(func() { ctl.Remove("cli-t1"); ctl.Remove(pool) })
	run(0, "create", "--metadata", meta, "--data", data, "--block-size", "128", "--low-water", "4", pool)
	run(1, "create", "--metadata", meta, "--data", data, "--block-size", "128", "other") // exists as a pool's, in use
	run(0, "deactivate", pool)
	if out := run(1, "create", "--metadata", meta, "--data", data, "--block-size", "128", pool); !strings.Contains(out, "--force") {
		t.Fatalf("re-format without --force: %s", out)
	}
	run(0, "activate", "--metadata", meta, "--data", data, "--low-water", "4", pool)
	run(0, "thin", "create", pool, "1")
	if out := run(1, "thin", "create", pool, "1"); !strings.Contains(out, "exists") {
		t.Fatalf("second create: %s", out)
	}
	node := strings.TrimSpace(run(0, "thin", "activate", pool, "1", "cli-t1", "4M"))
	f, err := os.OpenFile(node, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	for i := range buf {
		buf[i] = byte(i)
	}
	for _, b := range []int64{0, 3, 9} {
		if _, err := f.WriteAt(buf, b<<16); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	// status, text and JSON
	if out := run(0, "status", pool); !strings.Contains(out, "cli-t1") || !strings.Contains(out, "3 / 256 blocks of 128 sectors used") {
		t.Fatalf("status:\n%s", out)
	}
	var js struct {
		Pool          string `json:"pool"`
		Mode          string `json:"mode"`
		TransactionID uint64 `json:"transaction_id"`
		DataUsed      uint64 `json:"data_used"`
		DataTotal     uint64 `json:"data_total"`
		HeldRoot      uint64 `json:"held_root"`
		Thins         []struct {
			Name          string `json:"name"`
			ID            uint64 `json:"id"`
			MappedSectors uint64 `json:"mapped_sectors"`
			HighestSector uint64 `json:"highest_sector"`
		} `json:"thins"`
	}
	status := func() {
		t.Helper()
		js.Thins = nil
		if err := json.Unmarshal([]byte(run(0, "status", "--json", pool)), &js); err != nil {
			t.Fatal(err)
		}
	}
	status()
	if js.Pool != pool || js.Mode != "rw" || js.DataUsed != 3 || js.DataTotal != 256 || len(js.Thins) != 1 ||
		js.Thins[0].MappedSectors != 3*128 || js.Thins[0].HighestSector != 10*128-1 {
		t.Fatalf("status --json: %+v", js)
	}
	run(0, "set-transaction-id", pool, "0", "3")
	if out := run(1, "set-transaction-id", pool, "0", "4"); !strings.Contains(out, "transaction id is 3, not 0") {
		t.Fatalf("stale set-transaction-id: %s", out)
	}
	run(0, "snap", pool, "2", "1")
	if out := run(1, "snap", pool, "2", "1"); !strings.Contains(out, "exists") {
		t.Fatalf("second snap: %s", out)
	}
	if out := run(0, "thin", "list", pool); !strings.Contains(out, "cli-t1") {
		t.Fatalf("thin list: %s", out)
	}
	if out := run(0, "read", pool, "ls", "--no-headers", "-o", "DEV,MAPPED_BLOCKS"); strings.Count(out, "\n") != 2 {
		t.Fatalf("read ls: %q", out)
	}
	if out := run(0, "read", pool, "delta", "--thin1", "1", "--thin2", "2"); !strings.Contains(out, "<diff") {
		t.Fatalf("read delta: %s", out)
	}
	// A held snapshot (as a crashed reader leaves it): --held reads it,
	// byte-identical to the guest's thin_dump -m; Read refuses; release.
	if _, err := ctl.Message(pool, 0, "reserve_metadata_snap"); err != nil {
		t.Fatal(err)
	}
	ours := run(0, "read", "--held", pool, "dump")
	theirs, err := exec.Command("thin_dump", "-m", meta).Output()
	if err != nil {
		t.Fatalf("thin_dump -m: %v", err)
	}
	if ours != string(theirs) {
		t.Fatalf("pool read --held dump differs from thin_dump -m:\n%s\n---\n%s", ours, theirs)
	}
	if out := run(1, "read", pool, "dump"); !strings.Contains(out, "--release") {
		t.Fatalf("read with a held root: %s", out)
	}
	run(0, "read", "--release", pool)
	if out := run(1, "read", "--release", pool); !strings.Contains(out, "no metadata snapshot") {
		t.Fatalf("release of nothing: %s", out)
	}
	if out := run(0, "read", "--release-stale", pool, "dump", "--skip-mappings"); !strings.Contains(out, `<device dev_id="2"`) {
		t.Fatalf("read dump: %s", out)
	}
	// An output that is the pool's metadata device, by its own node or by
	// another node of the same device, is refused before it is written.
	var mst unix.Stat_t
	if err := unix.Stat(meta, &mst); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(t.TempDir(), "meta-alias")
	if err := unix.Mknod(alias, unix.S_IFBLK|0o600, int(mst.Rdev)); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{meta, alias} {
		if msg := run(1, "read", pool, "dump", "-o", out); !strings.Contains(msg, "output is the same file as the input") {
			t.Fatalf("read dump -o %s (the metadata device): %s", out, msg)
		}
	}
	status()
	if js.HeldRoot != 0 || js.TransactionID != 3 {
		t.Fatalf("after the reads: %+v", js)
	}

	// wait (not reached), grow, list
	run(1, "wait", "--timeout", "1s", pool)
	_, table, err := ctl.Table("cli-data")
	if err != nil {
		t.Fatal(err)
	}
	table[0].Length *= 2
	if _, err := ctl.Load("cli-data", table, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Resume("cli-data", 0); err != nil {
		t.Fatal(err)
	}
	run(0, "grow", "--data-blocks", "512", pool)
	run(1, "grow", "--data-blocks", "9999", pool)
	run(1, "grow", "--metadata", pool)
	status()
	if js.DataTotal != 512 {
		t.Fatalf("after growth: %+v", js)
	}
	if out := run(0, "list"); !strings.Contains(out, pool) || !strings.Contains(out, "512") {
		t.Fatalf("list: %s", out)
	}

	// recovery of a suspended thin
	if _, err := ctl.Suspend("cli-t1", 0); err != nil {
		t.Fatal(err)
	}
	if out := run(0, "recover", pool); !strings.Contains(out, "resumed cli-t1") {
		t.Fatalf("recover: %s", out)
	}
	if info, _ := ctl.Info("cli-t1"); info.Suspended() {
		t.Fatal("cli-t1 still suspended")
	}
	if out := run(0, "recover", pool); out != "" {
		t.Fatalf("second recover: %q", out)
	}

	// deactivation
	if out := run(1, "deactivate", pool); !strings.Contains(out, "cli-t1") {
		t.Fatalf("deactivate with an active thin: %s", out)
	}
	run(0, "thin", "delete", pool, "2")
	run(1, "thin", "delete", pool, "1") // active
	run(0, "deactivate", "--thins", pool)
	run(1, "status", pool)

	// Features and a low water mark already reached.
	run(0, "activate", "--metadata", meta, "--data", data, "--low-water", "1000",
		"--features", "skip_block_zeroing,no_discard_passdown,error_if_no_space", pool)
	if out := run(0, "wait", "--timeout", "30s", pool); !strings.Contains(out, "low water 1000") {
		t.Fatalf("wait: %s", out)
	}
	var feat struct {
		Discard        string `json:"discard"`
		ErrorIfNoSpace bool   `json:"error_if_no_space"`
		LowWater       uint64 `json:"low_water"`
	}
	if err := json.Unmarshal([]byte(run(0, "status", "--json", pool)), &feat); err != nil {
		t.Fatal(err)
	}
	if feat.Discard != "no_discard_passdown" || !feat.ErrorIfNoSpace || feat.LowWater != 1000 {
		t.Fatalf("features in the status: %+v", feat)
	}
	tab, err := exec.Command("dmsetup", "table", pool).Output()
	if err != nil || !strings.Contains(string(tab), " 1000 3 skip_block_zeroing no_discard_passdown error_if_no_space") {
		t.Fatalf("dmsetup table %q %v", tab, err)
	}
	run(0, "deactivate", pool)
	fmt.Printf("\nTHINMETA-REGION region=8 meta_offset=%d meta_bytes=%d\n", metaOff, metaBytes)
}
