#!/usr/bin/env bash
# On the GPU machine, with the test and CLI binaries in $BIN (default build/gpu-carry): the
# hand-written kernel's GPU test plain and under memcheck and racecheck, the whole GPU suite, and
# `qmm bench --sweep` over token rows with the default dispatch and with QMM_CUDA_PREFILL=wgmma,
# side by side in one process tree. Output in $OUT.
#   bench/gpu/lab/wgmma_check.sh [ROWS] [SHAPE ...]     (ROWS: M list, SHAPE: N,K)
set -uo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-build/gpu-carry}
OUT=${OUT:-build/wgmma-check-out}
mkdir -p "$OUT"
ROWS=${1:-17,24,32,48,64,96,128}
shift || true
SHAPES=("$@")
((${#SHAPES[@]})) || SHAPES=(8192,8192 14336,4096 4096,14336 28672,8192 8192,28672)
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
T=GpuMatmul.WgmmaPrefillEdgeShapes
echo "== $T"; "$BIN/test_gpu" --gtest_filter=$T --gtest_brief=1 2>&1 | tail -3
echo "== memcheck"; timeout 200 "$CS" --tool memcheck --error-exitcode 99 --leak-check no \
  "$BIN/test_gpu" --gtest_filter=$T --gtest_brief=1 >"$OUT/memcheck.log" 2>&1
echo "rc $?"; grep -E "ERROR SUMMARY|FAILED|Invalid|Illegal" "$OUT/memcheck.log" | head -5
echo "== racecheck"; timeout 200 "$CS" --tool racecheck --error-exitcode 99 --kernel-name-exclude kns=nvjet \
  "$BIN/test_gpu" --gtest_filter=$T --gtest_brief=1 >"$OUT/racecheck.log" 2>&1
echo "rc $?"; grep -E "RACECHECK SUMMARY|FAILED|hazard" "$OUT/racecheck.log" | head -5
echo "== test_gpu"; timeout 150 "$BIN/test_gpu" --gtest_brief=1 >"$OUT/test_gpu.log" 2>&1
echo "rc $?"; tail -4 "$OUT/test_gpu.log"
args=()
for s in "${SHAPES[@]}"; do args+=(--sweep "$s"); done
for path in table wgmma; do
  echo "== bench, prefill path: $path"
  QMM_CUDA_PREFILL=$path timeout 200 "$BIN/qmm" bench --device gpu --rows "$ROWS" "${args[@]}" \
    --out "$OUT/sweep-$path.json" >"$OUT/sweep-$path.log" 2>&1
  grep -E "^quantized_matmul" "$OUT/sweep-$path.log" | awk '{print $5, $6, $7, $8, $9, $11, $13, $15}'
done
