package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/devfile"
	"github.com/thinmeta/thinmeta/pack"
	"github.com/thinmeta/thinmeta/thin"
)

var generateCommand = &command{
	name:    "generate",
	summary: "generate a pool of a given shape, optionally damaged (test fixtures)",
	usage: `Usage: thinmeta generate [options] -o OUTPUT
       thinmeta generate [options] OUTPUT

Generate the metadata of a dm-thin pool of a known shape from a seed and
write it to OUTPUT (given with -o, as thin_restore takes its output, or
as the last argument). The pool is built through thinmeta's write path as the
kernel would build it under LVM: thin devices are created and written in
runs, snapshots are taken (chains, fans or a random tree) and both sides
rewritten, which breaks sharing block by block; blocks are discarded,
devices deleted, a metadata snapshot reserved and one device written
again after it. The same options and seed always give the same bytes.

With --metadata-format extended the pool is of thinmeta's extended format
(docs/EXTENSION.md), which the kernel and thin-provisioning-tools refuse:
every device is created with a blob of --blob-size bytes in the same
transaction, its id handed out by the pool or chosen by the generator
above 2^32 (--ids), and the blobs are indexed by their first --index-bytes
bytes. A named blob starts with "thin-<id>", zero-padded to the index
width, and goes on with pseudo-random bytes; --duplicate-keys gives some
devices the name of an earlier one. The pool's shape is that of the stock
pool of the same options and seed. The options marked "extended:" need
--metadata-format extended.

OUTPUT is written as a raw metadata image, a thin_metadata_pack file, or
an LZ4 frame of the raw image (which the lz4 tool decompresses), chosen by
--format or else by OUTPUT's extension (.pack, .lz4; anything else is raw).
Every thinmeta command that reads metadata reads all three.

Shape of the pool (the same settings as --spec; defaults in brackets):
%s
      --spec TEXT           the settings above as one "name=value ..."
                            string (as -v prints it); options given
                            separately override it

Output and damage:
  -o, --output OUTPUT       the file to write
      --seed N              the random seed [1]
      --format FORMAT       raw, pack or lz4 [from OUTPUT's extension]
      --damage KIND[:OPTS]  damage the pool after generating it (checksum
                            damage cannot be kept in a pack file); KIND is
                              leak-data, leak-metadata: a free block
                                marked in use
                              data-refcount, metadata-refcount: a block's
                                reference count one too low
                              node-checksum: a mapping-tree node's checksum
                              key-order: two keys of a mapping-tree leaf
                                swapped
                              missing-details: a device's details entry
                                removed
                              mapped-blocks: a device's mapped_blocks one
                                too high
                              metadata-snap: the metadata snapshot's
                                superblock checksum
                              torn-superblock: the last superblock write
                                torn
                            OPTS are comma-separated: seed=N picks another
                            victim; delta=N changes a count by N instead;
                            overflow picks a count of 3 or more (kept in
                            the overflow tree); internal picks an internal
                            node. What was damaged, the verdicts of
                            thin_check 0.9.0 and 1.1.0 (docs/CHECK.md
                            says where they differ) and exactly what
                            "thinmeta check" reports are printed. Every
                            kind applies to extended pools too (thin_check
                            refuses them: fatal)
      --expect FILE         write to FILE what thin_dump prints for the
                            pool (before any damage), computed from the
                            generator's own record of what it built (for
                            an extended pool, what "thinmeta dump" prints)
      --expect-snap FILE    the same for the metadata snapshot
                            (thin_dump -m)
  -f, --force               replace OUTPUT if it exists
  -v, --verbose             print the full spec and the geometry
  -q, --quiet               print nothing but errors
  -h, --help                show this help

Exit status: 0 success, 1 failure (the pool does not fit, OUTPUT exists,
I/O error), 2 bad usage.
`,
}

func init() {
	generateCommand.run = runGenerate
	var b strings.Builder
	d := gen.DefaultSpec()
	for _, f := range gen.Fields() {
		opt := "      --" + f.Name
		if !f.Bool {
			opt += " V"
		}
		writeWrapped(&b, fmt.Sprintf("%-28s", opt), f.Help+" ["+f.Get(&d)+"]")
	}
	generateCommand.usage = fmt.Sprintf(generateCommand.usage, strings.TrimRight(b.String(), "\n"))
}

// writeWrapped writes text after a 28-column lead, wrapped at 78 columns
// with continuation lines indented as far.
func writeWrapped(b *strings.Builder, lead, text string) {
	const indent = 28
	line := lead
	for _, w := range strings.Fields(text) {
		if len(line) > indent && len(line)+1+len(w) > 78 {
			b.WriteString(line + "\n")
			line = strings.Repeat(" ", indent)
		} else if len(line) > indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}

// specSetting is a spec option given on the command line.
type specSetting struct {
	field gen.Field
	value string
}

// specFlag collects one spec field's option.
type specFlag struct {
	field gen.Field
	out   *[]specSetting
}

// String implements flag.Value (no default is shown).
func (f specFlag) String() string { return "" }

// IsBoolFlag lets boolean settings be given without a value.
func (f specFlag) IsBoolFlag() bool { return f.field.Bool }

// Set checks v and records the setting, applied after --spec.
func (f specFlag) Set(v string) error {
	var s gen.Spec
	if err := f.field.Set(&s, v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "gen: "))
	}
	*f.out = append(*f.out, specSetting{f.field, v})
	return nil
}

// outputFormat returns the output format named or implied by the path.
func outputFormat(name, path string) (string, error) {
	if name == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".pack":
			return "pack", nil
		case ".lz4":
			return "lz4", nil
		}
		return "raw", nil
	}
	switch name {
	case "raw", "pack", "lz4":
		return name, nil
	}
	return "", fmt.Errorf("unknown format %q (raw, pack or lz4)", name)
}

func runGenerate(e *env, args []string) int {
	c := generateCommand
	fs := e.flagSet(c)
	var settings []specSetting
	for _, f := range gen.Fields() {
		fs.Var(specFlag{f, &settings}, f.Name, f.Help)
	}
	var output, specText, seedText, format, damage, expect, expectSnap string
	var force, verbose, quiet bool
	stringFlag(fs, &output, "", "o", "output")
	stringFlag(fs, &specText, "", "spec")
	stringFlag(fs, &seedText, "", "seed")
	stringFlag(fs, &format, "", "format")
	stringFlag(fs, &damage, "", "damage")
	stringFlag(fs, &expect, "", "expect")
	stringFlag(fs, &expectSnap, "", "expect-snap")
	boolFlag(fs, &force, "", "f", "force")
	boolFlag(fs, &verbose, "", "v", "verbose")
	boolFlag(fs, &quiet, "", "q", "quiet")
	pos, code, ok := e.parse(c, fs, args)
	if !ok {
		return code
	}
	if output != "" {
		pos = append([]string{output}, pos...)
	}
	if len(pos) != 1 {
		return e.usageError(c, "expected one OUTPUT (-o OUTPUT, or the last argument)")
	}
	out := pos[0]
	spec, err := gen.ParseSpec(specText)
	if err != nil {
		return e.usageError(c, "--spec: %s", strings.TrimPrefix(err.Error(), "gen: "))
	}
	for _, s := range settings {
		s.field.Set(&spec, s.value) // checked when parsed
	}
	if err := spec.Validate(); err != nil {
		return e.usageError(c, "%s", strings.TrimPrefix(err.Error(), "gen: "))
	}
	if spec.Variant != thin.Extended {
		if name := extendedSetting(specText, settings); name != "" {
			return e.usageError(c, "--%s: only an extended pool has blobs (--metadata-format extended)", name)
		}
	}
	seed := uint64(1)
	if seedText != "" {
		if seed, err = strconv.ParseUint(seedText, 0, 64); err != nil {
			return e.usageError(c, "bad --seed %q", seedText)
		}
	}
	if format, err = outputFormat(format, out); err != nil {
		return e.usageError(c, "--format: %v", err)
	}
	var inj *gen.Injection
	if damage != "" {
		in, err := gen.ParseDamage(damage)
		if err != nil {
			return e.usageError(c, "--damage: %s", strings.TrimPrefix(err.Error(), "gen: "))
		}
		inj = &in
		switch in.Kind {
		case gen.NodeChecksum, gen.SnapshotChecksum, gen.TornSuperblock:
			if format == "pack" {
				return e.usageError(c, "--damage %v breaks a checksum, and a pack file leaves such blocks out (they unpack as zeros): write raw or lz4", in.Kind)
			}
		}
	}
	if st, err := os.Stat(out); err == nil {
		if !st.Mode().IsRegular() {
			return e.fail(c, fmt.Errorf("%s: not a regular file (generate writes image files only)", out))
		}
		if !force {
			return e.fail(c, fmt.Errorf("%s: file exists; use -f (--force) to replace it", out))
		}
	}

	plan, err := gen.NewPlan(spec, seed)
	if err != nil {
		return e.fail(c, err)
	}
	if verbose && !quiet {
		fmt.Fprintf(e.stdout, "spec: %v\nseed: %d\nmetadata: %d blocks (%d bytes)\ndata: %d blocks of %d sectors\n",
			plan.Spec(), seed, plan.MetadataBlocks, plan.MetadataBytes(), plan.NrDataBlocks, plan.Spec().DataBlockSize)
		if ps := plan.Spec(); ps.Variant == thin.Extended {
			fmt.Fprintf(e.stdout, "extended: %d-byte blobs (%s), index of %d bytes, ids %s\n", ps.BlobSize, ps.BlobFill, ps.IndexBytes, ps.IDs)
		}
	}
	// The image is built in a temporary file: beside OUTPUT for a raw
	// image (renamed into place), unlinked in the temporary directory
	// otherwise.
	dir := os.TempDir()
	if format == "raw" {
		dir = filepath.Dir(out)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return e.fail(c, err)
	}
	tmpName := tmp.Name()
	defer func() {
		tmp.Close()
		if tmpName != "" {
			os.Remove(tmpName)
		}
	}()
	if format != "raw" {
		os.Remove(tmpName)
		tmpName = ""
	}
	if format == "raw" {
		if err := tmp.Chmod(0o644); err != nil {
			return e.fail(c, err)
		}
	}
	rec, err := plan.BuildFile(tmp)
	if err != nil {
		return e.fail(c, err)
	}
	if err := writeExpectations(rec, expect, expectSnap); err != nil {
		return e.fail(c, err)
	}
	var rep *gen.Report
	if inj != nil {
		if rep, err = gen.Damage(tmp, plan.MetadataBytes(), rec, *inj); err != nil {
			return e.fail(c, err)
		}
	}
	switch format {
	case "raw":
		if err := tmp.Sync(); err != nil {
			return e.fail(c, err)
		}
		if err := devfile.Replace(tmpName, out, waitLocks); err != nil {
			return e.fail(c, err)
		}
		tmpName = ""
	default:
		if err := encodeImage(tmp, plan.MetadataBytes(), out, format, force); err != nil {
			return e.fail(c, err)
		}
	}
	if !quiet {
		devs := 0
		for _, ev := range rec.Events {
			switch ev.Kind {
			case gen.Create, gen.Snap:
				devs++
			case gen.Delete:
				devs--
			}
		}
		fmt.Fprintf(e.stdout, "%s: %s image, %d devices, %d metadata blocks, %d data blocks, %d commits\n",
			out, format, devs, rec.MetadataBlocks, rec.NrDataBlocks, rec.Commits)
		if rep != nil {
			fmt.Fprintf(e.stdout, "damage %v\n  %s\n  blocks written: %v\n  thin_check 0.9.0: %v\n  thin_check 1.1.0: %v\n",
				rep.Injection, rep.Description, rep.Written, rep.ThinCheck, rep.ThinCheck110)
			for _, f := range rep.Findings {
				fmt.Fprintf(e.stdout, "  finding: %v\n", f)
			}
		}
	}
	return exitOK
}

// extendedSetting returns the name of a setting only extended pools use
// that the command line gives, in --spec or as an option, or "".
func extendedSetting(specText string, settings []specSetting) string {
	for _, s := range settings {
		if s.field.Extended {
			return s.field.Name
		}
	}
	for _, kv := range strings.Fields(specText) {
		name, _, _ := strings.Cut(kv, "=")
		for _, f := range gen.Fields() {
			if f.Name == name && f.Extended {
				return name
			}
		}
	}
	return ""
}

// writeExpectations writes thin_dump's expected output for the pool and
// its metadata snapshot, as the record says.
func writeExpectations(rec *gen.Record, live, snap string) error {
	write := func(path string, s *gen.State) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := s.WriteXML(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if live != "" {
		s, err := rec.Final()
		if err != nil {
			return err
		}
		if err := write(live, s); err != nil {
			return err
		}
	}
	if snap != "" {
		s, err := rec.MetadataSnapshot()
		if err != nil {
			return err
		}
		if s == nil {
			return errors.New("--expect-snap: the pool has no metadata snapshot (metadata-snap=true)")
		}
		if err := write(snap, s); err != nil {
			return err
		}
	}
	return nil
}

// encodeImage writes the size-byte image in img to path as a pack file or
// an LZ4 frame, atomically.
func encodeImage(img io.ReaderAt, size int64, path, format string, force bool) error {
	o, err := createOutput(path, force, false, nil)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(o.f, 1<<20)
	if format == "pack" {
		err = pack.Pack(img, size, bw)
	} else {
		err = writeLZ4(bw, img, size)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = o.commit()
	}
	if err != nil {
		o.abort()
		return err
	}
	return nil
}
