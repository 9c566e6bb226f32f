package thinmeta_test

import (
	"os/exec"
	"strings"
	"testing"
)

// rapid writes a .fail file under the package's testdata/rapid when a
// property fails; those are local reproductions, never part of the tree.
// The ignore rule must cover every package, and none may be committed.
func TestRapidFailuresIgnored(t *testing.T) {
	if _, err := exec.Command("git", "rev-parse", "--git-dir").Output(); err != nil {
		t.Skip("not in a git checkout")
	}
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	top := strings.TrimSpace(string(root)) + "/"
	for _, dir := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(dir+"/", top)
		p := rel + "testdata/rapid/TestX/TestX-1-1.fail"
		if err := exec.Command("git", "check-ignore", "-q", "--no-index", p).Run(); err != nil {
			t.Errorf("%s is not ignored by .gitignore", p)
		}
	}
	files, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(files)) {
		if strings.Contains(f, "testdata/rapid/") {
			t.Errorf("committed rapid failure file %s", f)
		}
	}
}
