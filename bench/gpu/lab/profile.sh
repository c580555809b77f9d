#!/usr/bin/env bash
# Nsight Compute reports of chosen kernels of `qmm bench` cases, on the GPU machine.
# Usage: bench/gpu/lab/profile.sh QMM_BINARY NAME KERNEL_REGEX SKIP -- BENCH_ARGS...
# Writes $OUT/NAME.ncu-rep and $OUT/NAME.txt (details page). Clocks are left alone
# (--clock-control none), as the device notes ask.
set -uo pipefail
qmm=$1 name=$2 kre=$3 skip=$4
shift 5
OUT=${OUT:-build/profile-out}
mkdir -p "$OUT"
ncu --clock-control none --graph-profiling node -k "regex:$kre" --launch-skip "$skip" \
  --launch-count 1 --set full -f -o "$OUT/$name" "$qmm" bench --device gpu "$@" \
  >"$OUT/$name.run.log" 2>&1
ncu -i "$OUT/$name.ncu-rep" --page details >"$OUT/$name.txt" 2>&1
tail -3 "$OUT/$name.run.log"
