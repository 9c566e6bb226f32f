package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinmeta/thinmeta/internal/genpool"
	"github.com/thinmeta/thinmeta/internal/memdev"
)

var errInjected = errors.New("injected write error")

// failingDev fails its failAt-th write and every one after, and sleeps
// in some writes so that batches of leaves finish at varying times.
type failingDev struct {
	*memdev.Dev
	mu     sync.Mutex
	writes int
	failAt int // 0: never
	rng    *rand.Rand
}

func (d *failingDev) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	d.writes++
	fail := d.failAt > 0 && d.writes >= d.failAt
	var nap time.Duration
	if d.rng != nil && d.rng.IntN(3) == 0 {
		nap = time.Duration(d.rng.IntN(300)) * time.Microsecond
	}
	d.mu.Unlock()
	time.Sleep(nap)
	if fail {
		return 0, errInjected
	}
	return d.Dev.WriteAt(p, off)
}

// aheadInputs are pools whose restores send many small batches of
// leaves, one with shared leaves copied back (reads that sync the
// writer in mid-restore), and an input error after many batches.
func aheadInputs(t *testing.T) map[string]string {
	in := map[string]string{}
	rng := rand.New(rand.NewPCG(11, 11))
	p := genpool.Generate(rng, genpool.Spec{Devices: 4, MinMappings: 2000, MaxMappings: 4000,
		MeanRun: 3, Sparsity: 2, SnapshotFraction: 0.4, RewriteFraction: 0.2})
	var b bytes.Buffer
	if err := p.WriteXML(&b); err != nil {
		t.Fatal(err)
	}
	in["generated"] = b.String()
	// The same, cut after two thirds of its mappings: an input error
	// once many batches are in flight or written.
	s := b.String()
	cut := strings.LastIndex(s[:2*len(s)/3], "\n")
	in["truncated"] = s[:cut+1] + "<bogus/>\n"
	var x strings.Builder
	x.WriteString(`<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="100000">` + "\n")
	x.WriteString(`<def name="d">` + "\n")
	for i := range 600 {
		fmt.Fprintf(&x, `<single_mapping origin_block="%d" data_block="%d" time="0"/>`+"\n", 1000+i, i)
	}
	x.WriteString("</def>\n")
	for dev := range 6 {
		fmt.Fprintf(&x, `<device dev_id="%d" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">`+"\n", dev)
		// A few mappings before the def: its first leaf is copied.
		fmt.Fprintf(&x, `<range_mapping origin_begin="0" data_begin="%d" length="%d" time="1"/>`+"\n", 1000+dev*1000, 3+dev)
		x.WriteString(`<ref name="d"/>` + "\n")
		fmt.Fprintf(&x, `<range_mapping origin_begin="5000" data_begin="%d" length="%d" time="2"/>`+"\n", 1100+dev*1000, 200+dev*50)
		x.WriteString("</device>\n")
	}
	x.WriteString("</superblock>\n")
	in["shared"] = x.String()
	return in
}

// restoreOnto restores xml onto a failing device and returns the error
// and the device's bytes.
func restoreOnto(xml string, failAt int, rng *rand.Rand, ahead bool) (string, []byte, int) {
	old := sendAhead
	sendAhead = ahead
	defer func() { sendAhead = old }()
	const size = 8 << 20
	d := &failingDev{Dev: memdev.New(size), failAt: failAt, rng: rng}
	_, err := Restore(context.Background(), strings.NewReader(xml), d, size, Options{})
	return fmt.Sprint(err), d.Bytes(), d.writes
}

// With batches sent ahead, a restore whose device fails at any write
// reports the same error, from the same input line, and leaves the
// device with the same bytes, as one that waits for each batch before
// sending the next, however the batches' writes are timed.
func TestSendAheadSameErrors(t *testing.T) {
	oldLeaves, oldOps := leafBatch, batchLen
	leafBatch, batchLen = 3, 50
	defer func() { leafBatch, batchLen = oldLeaves, oldOps }()
	for name, xml := range aheadInputs(t) {
		t.Run(name, func(t *testing.T) {
			_, _, writes := restoreOnto(xml, 0, nil, false)
			rng := rand.New(rand.NewPCG(uint64(len(xml)), 7))
			for failAt := 1; failAt <= writes+1; failAt++ {
				wantErr, wantImg, _ := restoreOnto(xml, failAt, nil, false)
				for range 3 {
					gotErr, gotImg, _ := restoreOnto(xml, failAt, rng, true)
					if gotErr != wantErr {
						t.Fatalf("failing at write %d: error %q, want %q", failAt, gotErr, wantErr)
					}
					if !bytes.Equal(gotImg, wantImg) {
						t.Fatalf("failing at write %d: the device differs", failAt)
					}
				}
			}
		})
	}
}
