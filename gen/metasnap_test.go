package gen_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/thinmeta/thinmeta/gen"
	"github.com/thinmeta/thinmeta/internal/tptest"
)

// Every spec option, with and without a metadata snapshot, gives a pool
// that thin_check of both generations passes without a finding, live and
// (with the snapshot) -m: each clean spec with metadata-snap turned the
// other way, and specs that size the devices by hand. Every option of a
// stock pool appears in some spec. thin_check 1.1.0 used to reject every
// --metadata-snap pool (issue 8), which only 0.9.0 was asked about.
func TestEveryOptionWithAndWithoutMetadataSnap(t *testing.T) {
	tptest.NeedGen(t, tptest.V110, "thin_check")
	texts := []string{
		"thins=2 mappings=1000 snapshots=2 nr-data-blocks=9000 metadata-blocks=2048",
		"thins=1 mappings=3000 snapshots=3 shape=fan metadata-format=stock metadata-blocks=600 data-slack=2",
	}
	for _, c := range cleanSpecs {
		texts = append(texts, c.spec)
	}
	var all []string
	for _, text := range texts {
		if strings.Contains(text, "metadata-snap=true") {
			all = append(all, text, strings.Replace(text, "metadata-snap=true", "metadata-snap=false", 1))
		} else {
			all = append(all, text, text+" metadata-snap=true")
		}
	}
	joined := strings.Join(all, " ")
	for _, f := range gen.Fields() {
		if !f.Extended && !strings.Contains(joined, f.Name+"=") {
			t.Errorf("no spec sets %s", f.Name)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, text := range all {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
				t.Logf("spec %s", text)
				img, _ := generate(t, spec(t, text), uint64(i+1))
				tptest.CheckClean(t, img)
				if strings.Contains(text, "metadata-snap=true") {
					tptest.CheckClean(t, img, "-m")
				}
			})
		})
	}
	wg.Wait()
}
