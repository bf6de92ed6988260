# ncu-env.sh — sourced by the Nsight Compute scripts (ncu-pkw.sh,
# ncu-pwdot.sh) that run ON the GPU machine: from the repository root,
# unpacks the bundle (LLORCH_BUNDLE_DIR, default .gpu-bundle) once, puts its
# libraries first on LD_LIBRARY_PATH, and sets BD (the bundle), NCU (the
# installed ncu, else the one on PATH) and O (${OUT:-.}, where results go).
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
[ -d "$BD/bin" ] || xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf -
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NCU=$(ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
NCU=${NCU:-ncu}
O=${OUT:-.}
