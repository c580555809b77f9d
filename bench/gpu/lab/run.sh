#!/usr/bin/env bash
# On the GPU machine: build the decode lab and run it over the cases given (default: the decode
# goal shapes of issue #5). Output goes to stdout and $OUT/decode_lab.txt.
#   LAB_READ=1      also time the weight stream alone (the load pattern's ceiling)
#   LAB_BASE=<rev>  also build the lab against <rev>'s src/cuda/qmv_mma.cuh and the device
#                   helpers it includes (extracted into
#                   build/lab-base; the rest of the tree as it is) and run base and current
#                   twice, interleaved, in this one process tree: an A/B comparison on one GPU
#                   (different lent machines differ by ~5 %).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-build}
mkdir -p build
FLAGS=(-O3 -std=c++20 -arch=sm_90a --expt-relaxed-constexpr -Iinclude -Isrc ${LAB_FLAGS:-})
if [ -n "${LAB_BASE:-}" ]; then
  mkdir -p build/lab-base/cuda
  for f in qmv_mma.cuh device_utils.cuh batch_map.cuh; do
    git show "$LAB_BASE:src/cuda/$f" >build/lab-base/cuda/$f
  done
  nvcc "${FLAGS[@]/#-Isrc/-Ibuild/lab-base}" -Isrc bench/gpu/lab/decode_lab.cu -o build/decode_lab_base &
fi
nvcc "${FLAGS[@]}" bench/gpu/lab/decode_lab.cu -o build/decode_lab
wait
if (($# == 0)); then
  set -- 1,8192,8192 1,4096,4096 1,14336,4096 1,16384,16384 8,8192,8192 16,8192,8192 \
    16,4096,4096 1,8192,8192,affine,8,64 1,8192,8192,mxfp4 1,8192,8192,nvfp4 1,8192,8192,mxfp8 \
    1,8192,8192,affine,2,64 1,8192,8192,affine,3,64 1,8192,8192,affine,5,64 1,8192,8192,affine,4,128 \
    1,8192,8192,affine,4,32 3,1000,2880 1,1536,2048 1,4096,14336
fi
if [ -n "${LAB_BASE:-}" ]; then
  for r in 1 2; do
    echo "== base $LAB_BASE"; build/decode_lab_base "$@"
    echo "== current"; build/decode_lab "$@"
  done | tee "$OUT/decode_lab.txt"
else
  build/decode_lab "$@" | tee "$OUT/decode_lab.txt"
fi
