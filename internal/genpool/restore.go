package genpool

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinmeta/thinmeta/internal/tptest"
)

// Restore writes p as XML and restores it with thin_restore into a new
// metadata image in the test's temporary directory. It returns the image
// path and the XML path.
func Restore(t testing.TB, p *Pool) (img, xml string) {
	t.Helper()
	dir := t.TempDir()
	xml = filepath.Join(dir, "pool.xml")
	f, err := os.Create(xml)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteXML(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "meta.img")
	if err := CreateSparse(img, int64(p.MetadataBlocks())*4096); err != nil {
		t.Fatal(err)
	}
	tptest.MustRun(t, "thin_restore", "-q", "-i", xml, "-o", img)
	return img, xml
}

// CreateSparse creates (or truncates) a zero-filled file of size bytes.
func CreateSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
