package dm_test

import (
	"fmt"
	"log"

	"github.com/thinmeta/thinmeta/dm"
)

// Device numbers as tables write them.
func ExampleDevString() {
	dev := dm.Mkdev(253, 300)
	fmt.Println(dm.DevString(dev), dm.Major(dev), dm.Minor(dev))
	// Output: 253:300 253 300
}

// A linear device over the first MiB of /dev/sdb (8:16), its status, and
// its removal. Needs root and device-mapper, so it is not run here; the
// guest tests run the same calls on the real kernel.
func ExampleControl() {
	c, err := dm.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Create("example", ""); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Load("example", []dm.Target{{Start: 0, Length: 2048, Type: "linear", Params: "8:16 0"}}, false); err != nil {
		log.Fatal(err)
	}
	info, err := c.Resume("example", 0)
	if err != nil {
		log.Fatal(err)
	}
	node, _ := c.NodeOf(info)
	_, status, _ := c.Status("example", false)
	fmt.Println(node, status)
	if err := c.Remove("example"); err != nil {
		log.Fatal(err)
	}
}
