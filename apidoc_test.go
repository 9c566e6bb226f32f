package thinmeta_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// publicPackages returns the directories and import paths of the module's
// importable packages: neither internal nor main.
func publicPackages(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Dir}} {{.Name}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] == "main" || strings.Contains(f[0], "/internal/") || strings.HasSuffix(f[0], "/internal") {
			continue
		}
		pkgs[f[0]] = f[1]
	}
	return pkgs
}

// parseDir parses a package directory: its files, and its test files.
func parseDir(t *testing.T, fset *token.FileSet, dir string) (files, tests []*ast.File) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "_test.go") {
			tests = append(tests, f)
		} else {
			files = append(files, f)
		}
	}
	return files, tests
}

// Every exported name of every importable package has a doc comment: a
// constant or variable in a group may share the group's.
func TestExportedNamesDocumented(t *testing.T) {
	var missing []string
	for path, dir := range publicPackages(t) {
		fset := token.NewFileSet()
		files, _ := parseDir(t, fset, dir)
		p, err := doc.NewFromFiles(fset, files, path)
		if err != nil {
			t.Fatal(err)
		}
		if p.Doc == "" {
			missing = append(missing, path+" (package)")
		}
		values := func(vs []*doc.Value) {
			for _, v := range vs {
				if v.Doc != "" {
					continue
				}
				for _, spec := range v.Decl.Specs {
					vs := spec.(*ast.ValueSpec)
					if vs.Doc != nil || vs.Comment != nil {
						continue
					}
					for _, n := range vs.Names {
						if n.IsExported() {
							missing = append(missing, path+"."+n.Name)
						}
					}
				}
			}
		}
		funcs := func(prefix string, fs []*doc.Func) {
			for _, f := range fs {
				if f.Doc == "" {
					missing = append(missing, path+"."+prefix+f.Name)
				}
			}
		}
		values(p.Consts)
		values(p.Vars)
		funcs("", p.Funcs)
		for _, ty := range p.Types {
			if ty.Doc == "" {
				missing = append(missing, path+"."+ty.Name)
			}
			values(ty.Consts)
			values(ty.Vars)
			funcs("", ty.Funcs)
			funcs(ty.Name+".", ty.Methods)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("undocumented: %s", m)
	}
}

// Every importable package with an API shows it in a runnable Example (one
// with an Output comment, which go test runs and checks). A package that
// exports nothing (the module's doc, the fuzz targets) needs none.
func TestPackagesHaveExamples(t *testing.T) {
	var lacking []string
	for path, dir := range publicPackages(t) {
		fset := token.NewFileSet()
		files, tests := parseDir(t, fset, dir)
		p, err := doc.NewFromFiles(fset, files, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Consts)+len(p.Vars)+len(p.Funcs)+len(p.Types) == 0 {
			continue
		}
		runnable := false
		for _, ex := range doc.Examples(tests...) {
			if ex.Output != "" || ex.EmptyOutput {
				runnable = true
			}
		}
		if !runnable {
			lacking = append(lacking, path)
		}
	}
	sort.Strings(lacking)
	for _, p := range lacking {
		t.Errorf("no runnable Example: %s", p)
	}
}
