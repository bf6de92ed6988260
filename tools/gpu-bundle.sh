#!/usr/bin/env bash
# gpu-bundle.sh — builds the CUDA pieces HERE (no GPU needed: nvcc sm_90) and
# collects what the GPU machine needs into the git-ignored .gpu-bundle/:
#   bin/    the GPU test and benchmark programs (+ llorch when it builds)
#   lib/    the shared libraries ldd lists, minus the ones every host has
#           (libc, libm, libdl, libpthread, librt, ld-linux, libgcc_s,
#           libstdc++, libcuda, libnvidia-ml)
#   models/ the small real test models (stories260K.gguf)
#   COMMIT  the commit (plus "+dirty") the binaries were built from
# Usage: tools/gpu-bundle.sh [extra cmake targets...]
# LLORCH_BUNDLE_DIR=DIR writes the bundle there instead (gpu-run.sh reads the same variable).
# LLORCH_BUNDLE_BASE=REV also builds llorch at git revision REV (a worktree in
# .cache/base-src, built in build-base: incremental across calls) into
# bin/llorch-base, for tests/gpu/pkw-validate.sh's part "ab" (alternating
# bench runs of the two in one device call).
# Then: device run with carry [".gpu-bundle"] and command "bash tools/gpu-run.sh".
set -euo pipefail
cd "$(dirname "$0")/.."
B=${LLORCH_GPU_BUILD:-build-cuda}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
grep -Eq "^CMAKE_CUDA_COMPILER:[A-Z]+=/" "$B/CMakeCache.txt" || { echo "gpu-bundle: no nvcc found" >&2; exit 1; }

targets=()
help=$(cmake --build "$B" --target help)
# the GPU tests, the CLI, the CUDA worker and the worker contract tests (run
# there against worker-orcd with LLORCH_WORKER_BIN=worker-orcd)
# LLORCH_BUNDLE_TARGETS replaces the default list: every CUDA-linked binary
# carries ~10 MB of sm_90 SASS + PTX, and what travels is capped at 64 MiB,
# so a run that needs only some of them names those.
default_targets="$(ls tests/gpu/test_*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//') llorch \
         worker-orcd worker-cpud pool-managerd test_worker test_worker_lifecycle test_worker_utf8"
for t in ${LLORCH_BUNDLE_TARGETS:-$default_targets} "$@"; do
    # only targets CMake knows (a test whose libraries are missing is skipped there)
    if grep -qx "\.\.\. $t" <<<"$help"; then targets+=("$t"); fi
done
echo "gpu-bundle: building ${targets[*]}"
cmake --build "$B" -j2 --target "${targets[@]}"

BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
rm -rf "$BD"
mkdir -p "$BD/bin" "$BD/lib" "$BD/models"
for t in "${targets[@]}"; do cp "$B/$t" $BD/bin/; done
if [ -n "${LLORCH_BUNDLE_BASE:-}" ]; then
    wt=.cache/base-src
    rev=$(git rev-parse --verify "$LLORCH_BUNDLE_BASE^{commit}")
    if [ -d "$wt" ]; then git -C "$wt" checkout -q --detach "$rev"
    else mkdir -p .cache && git worktree add -q --detach "$wt" "$rev"; fi
    cmake -S "$wt" -B build-base -DCMAKE_BUILD_TYPE=Release >/dev/null
    echo "gpu-bundle: building llorch at $rev (bin/llorch-base)"
    cmake --build build-base -j2 --target llorch
    cp build-base/llorch "$BD/bin/llorch-base"
fi
skip='^(libc|libm|libdl|libpthread|librt|ld-linux.*|libgcc_s|libstdc\+\+|libcuda|libnvidia-ml)\.so'
for f in $BD/bin/*; do
    ldd "$f" | awk '/=> \// {print $3}' | while read -r lib; do
        base=$(basename "$lib")
        if ! echo "$base" | grep -Eq "$skip"; then cp -Ln "$lib" $BD/lib/ 2>/dev/null || true; fi
    done
done
M=${LLORCH_MODELS_DIR:-../shared/models}
for m in stories260K.gguf llama-2-tiny-random.gguf; do [ -f "$M/$m" ] && cp "$M/$m" $BD/models/; done
cp tools/gpu-run.sh $BD/
{ git rev-parse HEAD; git diff --quiet -- src tests || echo "+dirty"; } | paste -sd' ' > $BD/COMMIT
strip --strip-debug $BD/bin/* 2>/dev/null || true
# every CUDA-linked binary carries ~20 MB of sm_90 SASS + PTX: over the
# 64 MiB a device run carries, bin/ travels as bin.tar.xz (gpu-run.sh unpacks it)
kb=$(du -sk "$BD" | cut -f1)
if [ "$kb" -ge 62000 ]; then
    tar -C "$BD" -cf - bin | xz -T2 -6 > "$BD/bin.tar.xz"
    rm -rf "$BD/bin"
fi
du -sh "$BD"
kb=$(du -sk "$BD" | cut -f1)
[ "$kb" -lt 62000 ] || echo "gpu-bundle: WARNING ${kb} KiB is over what a device run carries (64 MiB): set LLORCH_BUNDLE_TARGETS" >&2
ls "$BD" "$BD/lib"
