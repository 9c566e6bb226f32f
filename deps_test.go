package thinmeta_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/thinmeta/thinmeta"

// allowed lists, for each layer, the project packages it may import
// (directly or not); the stack points one way, as the kernel's
// persistent-data layers do.
var allowed = map[string][]string{
	"transaction":        {},
	"dm":                 {}, // the device-mapper client knows ioctls, not the format
	"btree":              {"transaction"},
	"superblock":         {"transaction"},
	"spacemap":           {"transaction", "btree"},
	"pack":               {"transaction"},
	"internal/blobindex": {"transaction", "btree"},
	"internal/devfile":   {"transaction"},
	"thin":               {"transaction", "btree", "spacemap", "superblock", "pack", "internal/blobindex", "internal/devfile"},
	// live pools: the device-mapper client and the format, side by side
	"live": {"dm", "transaction", "btree", "spacemap", "superblock", "pack", "internal/blobindex", "internal/devfile",
		"thin", "thin/check", "thin/internal/meter"},
}

// The layers import only what is below them, and no library package
// imports the CLI or test helpers.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		var deps []string
		for _, d := range f[1:] {
			if strings.HasPrefix(d, module+"/") {
				deps = append(deps, strings.TrimPrefix(d, module+"/"))
			}
		}
		if ok, listed := allowed[pkg]; listed {
			for _, d := range deps {
				if !slices.Contains(ok, d) {
					t.Errorf("%s imports %s: not below it", pkg, d)
				}
			}
		}
		if strings.HasPrefix(pkg, "cmd/") || strings.HasPrefix(pkg, "bench/") || pkg == "fuzz" || strings.HasPrefix(pkg, "internal/") {
			continue // the CLI, tools and test helpers may use test helpers
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "cmd/") || d == "internal/tptest" || d == "internal/genpool" || d == "internal/oracle" {
				t.Errorf("library package %s imports %s", pkg, d)
			}
		}
	}
}
