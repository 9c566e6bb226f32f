#!/usr/bin/env bash
# Regenerates the gen-*.lz4 and gen-*.pack fixtures: small pools written by
# "thinmeta generate" (deterministic: the same command gives the same bytes),
# clean ones and ones damaged in one named way each. README.md says what each
# holds; TestFixturesRegenerate (cmd/thinmeta) runs these exact commands and
# compares the bytes. One command per line, no shell quoting: the test reads
# them.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/thinmeta" ./cmd/thinmeta
t="$tmp/thinmeta"
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 testdata/gen-clean.lz4
"$t" generate -f -q --thins 3 --mappings 200-900 --run-length 4 --snapshots 6 --shape tree --discard 0.05 --deletions 2 --metadata-snap --metadata-blocks 256 --seed 2 testdata/gen-tree.pack
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage leak-data testdata/gen-leak-data.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage leak-metadata testdata/gen-leak-metadata.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage data-refcount testdata/gen-data-refcount.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage metadata-refcount testdata/gen-metadata-refcount.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage node-checksum testdata/gen-node-checksum.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage key-order testdata/gen-key-order.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage missing-details testdata/gen-missing-details.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage mapped-blocks testdata/gen-mapped-blocks.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage metadata-snap testdata/gen-metadata-snap.lz4
"$t" generate -f -q --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --metadata-snap --metadata-blocks 128 --damage torn-superblock testdata/gen-torn-superblock.lz4
"$t" generate -f -q --metadata-format extended --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --deletions 1 --metadata-snap --duplicate-keys 0.5 --metadata-blocks 128 testdata/gen-extended.lz4
"$t" generate -f -q --metadata-format extended --ids wide --blob-fill random --blob-size 200 --index-bytes 16 --thins 3 --mappings 2000 --snapshots 2 --shape fan --bulk --deletions 1 --metadata-blocks 128 --seed 2 testdata/gen-extended-bulk.pack
"$t" generate -f -q --metadata-format extended --thins 2 --mappings 300 --snapshots 3 --shape fan --rewrite 0.02 --target snapshot --deletions 1 --metadata-snap --duplicate-keys 0.5 --metadata-blocks 128 --damage missing-details testdata/gen-extended-missing-details.lz4
echo "wrote testdata/gen-*"
