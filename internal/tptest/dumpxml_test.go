package tptest

import "testing"

// The canonical form ignores how mappings are grouped into runs and
// shared leaves, and a zero flags attribute left out; it keeps everything
// else.
func TestCanonicalDump(t *testing.T) {
	v090 := `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="100">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="10" length="2" time="0"/>
    <single_mapping origin_block="5" data_block="20" time="1"/>
  </device>
  <device dev_id="2" mapped_blocks="2" transaction="0" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="10" length="2" time="0"/>
  </device>
</superblock>
`
	v110 := `<superblock uuid="" time="1" transaction="2" version="2" data_block_size="128" nr_data_blocks="100">
  <def name="7">
    <single_mapping origin_block="0" data_block="10" time="0"/>
    <single_mapping origin_block="1" data_block="11" time="0"/>
  </def>
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
    <ref name="7"/>
    <single_mapping origin_block="5" data_block="20" time="1"/>
  </device>
  <device dev_id="2" mapped_blocks="2" transaction="0" creation_time="1" snap_time="1">
    <ref name="7"/>
  </device>
</superblock>`
	a, err := CanonicalDump([]byte(v090))
	if err != nil {
		t.Fatal(err)
	}
	b, err := CanonicalDump([]byte(v110))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("canonical forms differ:\n%s\n---\n%s", a, b)
	}
	for _, bad := range []string{
		`<superblock uuid="" time="1" transaction="2" flags="1" version="2" data_block_size="128" nr_data_blocks="100"></superblock>`,
		`<superblock uuid="" time="1" transaction="2" version="2" data_block_size="128" nr_data_blocks="100">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="10" length="3" time="0"/>
  </device></superblock>`,
	} {
		c, err := CanonicalDump([]byte(bad))
		if err != nil || c == a {
			t.Fatalf("%s: %v, canonical form equal to the original's", bad, err)
		}
	}
	if _, err := CanonicalDump([]byte(`<superblock><device><ref name="x"/></device></superblock>`)); err == nil {
		t.Fatal("a <ref> to no <def> was accepted")
	}
}
