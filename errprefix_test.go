package thinmeta_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// libraryDirs returns the directories of the module's library packages:
// everything but the CLI, the benchmark tools and the test helpers.
func libraryDirs(t *testing.T) []string {
	var dirs []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") && p != "." || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		switch p {
		case "cmd", "bench", "internal/tptest", "internal/oracle", "internal/genpool", "internal/memtest", "internal/crashtest":
			return filepath.SkipDir
		}
		dirs = append(dirs, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// The error-prefix rule: the library's errors never say "thinmeta:" (the
// CLI puts "thinmeta COMMAND:" in front of what it prints, once), and a
// sentinel is a bare phrase, with no "package:" in front either, so that
// wrapping it adds each piece of context once. The test reads every
// string literal of the library's source, and every sentinel
// (package-level Err... = errors.New), without running anything.
func TestErrorPrefixRule(t *testing.T) {
	dirs := libraryDirs(t)
	pkgNames := map[string]bool{"thinmeta": true}
	for _, d := range dirs {
		pkgNames[filepath.Base(d)] = true
	}
	fset := token.NewFileSet()
	sentinels := 0
	for _, dir := range dirs {
		pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			for _, f := range pkg.Files {
				ast.Inspect(f, func(n ast.Node) bool {
					lit, ok := n.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						return true
					}
					s, err := strconv.Unquote(lit.Value)
					if err == nil && strings.Contains(s, "thinmeta: ") {
						t.Errorf("%s: %q: library text with a \"thinmeta:\" prefix", fset.Position(lit.Pos()), s)
					}
					return true
				})
				for _, decl := range f.Decls {
					g, ok := decl.(*ast.GenDecl)
					if !ok || g.Tok != token.VAR {
						continue
					}
					for _, spec := range g.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, name := range vs.Names {
							if !strings.HasPrefix(name.Name, "Err") && !strings.HasPrefix(name.Name, "err") || i >= len(vs.Values) {
								continue
							}
							msg, ok := errorsNewText(vs.Values[i])
							if !ok {
								continue
							}
							sentinels++
							if w, _, found := strings.Cut(msg, ": "); found && pkgNames[w] {
								t.Errorf("%s: %s = %q: a sentinel with a prefix", fset.Position(name.Pos()), name.Name, msg)
							}
							if msg == "" || strings.HasSuffix(msg, ".") || strings.HasSuffix(msg, "\n") {
								t.Errorf("%s: %s = %q: not a bare phrase", fset.Position(name.Pos()), name.Name, msg)
							}
						}
					}
				}
			}
		}
	}
	if sentinels < 50 {
		t.Errorf("found only %d sentinels: the scan is broken", sentinels)
	}
}

// errorsNewText returns the message of errors.New("...").
func errorsNewText(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "New" {
		return "", false
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "errors" {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
