#!/usr/bin/env bash
# Regenerates testdata/sample.pack: a small pool written by thinmeta itself
# (two thins, a snapshot sharing and then diverging from its origin, a
# deleted thin, an unmapped range and a held metadata snapshot), packed in
# thin_metadata_pack format. Deterministic: the same commands give the same
# bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/thinmeta" ./cmd/thinmeta
t="$tmp/thinmeta"
img="$tmp/sample.img"
"$t" format --size 4M --nr-data-blocks 16384 --data-block-size 128 "$img"
"$t" message -q "$img" create_thin 1 map 1 0 600 create_thin 2 map 2 1000 300 set_transaction_id 0 1
"$t" message -q "$img" create_snap 3 1 map 1 0 40 map 3 590 50 set_transaction_id 1 2
"$t" message -q "$img" delete 2 create_snap 4 3 unmap 4 100 300 set_transaction_id 2 3
"$t" message -q "$img" reserve_metadata_snap map 1 700 60 set_transaction_id 3 4
"$t" check -q "$img"
"$t" pack -f -i "$img" -o testdata/sample.pack
echo "wrote testdata/sample.pack"
