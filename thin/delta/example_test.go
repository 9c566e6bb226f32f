package delta_test

import (
	"fmt"

	"github.com/thinmeta/thinmeta/thin/delta"
)

// The kinds of range are named as thin_delta names its XML elements.
func ExampleKind() {
	for _, k := range []delta.Kind{delta.LeftOnly, delta.RightOnly, delta.Different, delta.Same} {
		fmt.Println(k)
	}
	// Output:
	// left_only
	// right_only
	// different
	// same
}
