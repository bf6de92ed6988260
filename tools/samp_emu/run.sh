#!/bin/bash
# CPU emulation of sample.cu's many-block sampler against the host sampler
# (no GPU needed): every CUDA thread a fiber on one OS thread (x86-64), warp
# shuffles / ballots / matches and barriers emulated, blocks run in order (so
# `static` stands for __shared__). Logic only: no memory model, no timing.
# Usage: tools/samp_emu/run.sh [small] N...   (small: SP_CMAX 512, SP_CSMALL 64,
# to reach the levels, the interval mode and the fallback on small vocabularies)
# EMU_TRACE=1 prints each call's path. Exit 1 on any token != the host's.
set -e
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd); out=${TMPDIR:-/tmp}/samp_emu
mkdir -p "$out"
sed -n '/^#define SB 1024/,/^\/\* the sampler.s scratch/p' "$root/src/engine/cuda/sample.cu" | sed '$d' \
  | sed 's/extern __shared__ unsigned long long sk\[\];/unsigned long long *sk = g_dyn;/' > "$out/kernels.inc"
if [ "$1" = small ]; then
  shift
  sed -i 's/^#define SP_CMAX 16384 /#define SP_CMAX 512 /; s/^#define SP_CSMALL 2048 /#define SP_CSMALL 64 /' "$out/kernels.inc"
fi
gcc -O2 -c -I"$root/src" "$root/src/engine/sampler.c" -o "$out/sampler.o"
g++ -std=c++20 -O1 -ffp-contract=off -I"$root/src" -I"$out" "$here/emu.cpp" "$out/sampler.o" -o "$out/emu" -lm
"$out/emu" "${@:-1000}"
