package thinmeta_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/thinmeta/thinmeta"

// Groups of packages that layers above may build on.
var (
	// format: the on-disk structures and the device access below the pool.
	format = []string{"transaction", "btree", "spacemap", "superblock", "pack", "internal/blobindex", "internal/devfile", "internal/offheap", "internal/refcount"}
	// pool: the format, the pool on it, and the progress meter of the
	// long calls on it.
	pool = append(slices.Clone(format), "thin", "thin/internal/meter")
	// tools: the pool and the thin_* tools as packages.
	tools = append(slices.Clone(pool), "thin/internal/walk", "thin/check", "thin/dump", "thin/ls", "thin/rmap",
		"thin/delta", "thin/restore", "thin/repair")
	// helpers: what tests and tools use to run thin-provisioning-tools.
	helpers = []string{"internal/tptest", "pack", "transaction"}
)

// allowed lists, for every package of the module, the project packages
// it may import (directly or not); the stack points one way, as the
// kernel's persistent-data layers do. A package missing from the map
// fails the test: a new package says where it sits.
var allowed = map[string][]string{
	"":                    {}, // the overview (doc.go)
	"transaction":         {},
	"dm":                  {}, // the device-mapper client knows ioctls, not the format
	"btree":               {"transaction"},
	"superblock":          {"transaction"},
	"spacemap":            {"transaction", "btree"},
	"pack":                {"transaction"},
	"internal/blobindex":  {"transaction", "btree"},
	"internal/devfile":    {"transaction"},
	"internal/offheap":    {},                   // memory outside the Go heap for count planes
	"internal/refcount":   {"internal/offheap"}, // the count planes of check and restore
	"thin":                format,
	"thin/internal/meter": append(slices.Clone(format), "thin"),
	"thin/internal/walk":  pool,
	"thin/check":          pool,
	"thin/dump":           pool,
	"thin/restore":        pool,
	"thin/ls":             append(slices.Clone(pool), "thin/internal/walk"),
	"thin/rmap":           append(slices.Clone(pool), "thin/internal/walk"),
	"thin/delta":          append(slices.Clone(pool), "thin/internal/walk"),
	"thin/repair":         append(slices.Clone(pool), "thin/check", "thin/dump", "thin/restore"),
	"blob":                pool,
	"gen":                 append(slices.Clone(pool), "thin/check", "internal/opscript"),
	// live pools: the device-mapper client and the format, side by side
	"live": append(slices.Clone(pool), "dm", "thin/check"),
	// the CLI uses every library package, and no test helper
	"cmd/thinmeta": append(slices.Clone(tools), "blob", "gen", "dm", "live", "internal/opscript"),
	"fuzz":         {}, // its fuzz targets are tests
	"bench/genxml": {},
	// the operation language of scripts, rapid cases and gen records
	"internal/opscript": {},
	// test helpers
	"internal/opscript/oprun": append(slices.Clone(tools), "blob", "internal/opscript", "internal/tptest"),
	"internal/progresstest":   pool,
	"internal/memdev":         {},
	"internal/memtest":        {},
	"internal/oracle":         {},
	"internal/tptest":         helpers,
	"internal/genpool":        helpers,
	"internal/crashtest":      helpers,
}

// The layers import only what is below them, and no library package
// imports the CLI or test helpers.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		var deps []string
		for _, d := range f[1:] {
			if strings.HasPrefix(d, module+"/") {
				deps = append(deps, strings.TrimPrefix(d, module+"/"))
			}
		}
		ok, listed := allowed[pkg]
		if !listed {
			t.Errorf("package %q is not in the allowed map of deps_test.go: say what it may import", pkg)
		}
		for _, d := range deps {
			if !slices.Contains(ok, d) {
				t.Errorf("%s imports %s: not below it", pkg, d)
			}
		}
		seen[pkg] = true
		if strings.HasPrefix(pkg, "cmd/") || strings.HasPrefix(pkg, "bench/") || pkg == "fuzz" || strings.HasPrefix(pkg, "internal/") {
			continue // the CLI, tools and test helpers may use test helpers
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "cmd/") || d == "internal/tptest" || d == "internal/genpool" || d == "internal/oracle" {
				t.Errorf("library package %s imports %s", pkg, d)
			}
		}
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("deps_test.go lists %q, which is not a package of the module", pkg)
		}
	}
}
