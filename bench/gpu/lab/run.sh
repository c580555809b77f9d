#!/usr/bin/env bash
# On the GPU machine: build the decode lab and run it over the cases given (default: the decode
# goal shapes of issue #5). Output goes to stdout and $OUT/decode_lab.txt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-build}
mkdir -p build
nvcc -O3 -std=c++20 -arch=sm_90a --expt-relaxed-constexpr -Iinclude -Isrc ${LAB_FLAGS:-} \
  bench/gpu/lab/decode_lab.cu -o build/decode_lab
if (($# == 0)); then
  set -- 1,8192,8192 1,4096,4096 1,14336,4096 1,16384,16384 8,8192,8192 16,8192,8192 \
    16,4096,4096 1,8192,8192,affine,8,64 1,8192,8192,mxfp4 1,8192,8192,nvfp4 1,8192,8192,mxfp8 \
    1,8192,8192,affine,2,64 1,8192,8192,affine,3,64 1,8192,8192,affine,5,64 1,8192,8192,affine,4,128 \
    1,8192,8192,affine,4,32 3,1000,2880 1,1536,2048 1,4096,14336
fi
build/decode_lab "$@" | tee "$OUT/decode_lab.txt"
