package rmap_test

import (
	"fmt"
	"os"

	"github.com/thinmeta/thinmeta/thin/rmap"
)

func ExampleParseRegion() {
	r, err := rmap.ParseRegion("5..45")
	fmt.Println(r, err, r.Contains(44), r.Contains(45))
	_, err = rmap.ParseRegion("45..5")
	fmt.Println(err)
	// Output:
	// {5 45} <nil> true false
	// badly formed region (end <= begin)
}

func ExampleWrite() {
	rmap.Write(os.Stdout, []rmap.Entry{
		{DataBegin: 0, DataEnd: 5, Dev: 2, ThinBegin: 0},
		{DataBegin: 3, DataEnd: 5, Dev: 3, ThinBegin: 3},
	})
	// Output:
	// data 0..5 -> thin(2) 0..5
	// data 3..5 -> thin(3) 3..5
}
