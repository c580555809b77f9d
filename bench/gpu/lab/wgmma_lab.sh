#!/usr/bin/env bash
# Builds the hand-written-kernel lab here into build/wgmma_lab/wgmma_lab (carry it to the GPU
# machine and run it there; no CUTLASS needed).
set -euo pipefail
cd "$(dirname "$0")/../../.."
mkdir -p build/wgmma_lab
nvcc -O3 -DNDEBUG -std=c++20 -gencode arch=compute_90a,code=sm_90a -lineinfo --expt-relaxed-constexpr -Isrc -Iinclude \
  bench/gpu/lab/wgmma_lab.cu src/cuda/wgmma/wgmma_host.cu -lcublas -o build/wgmma_lab/wgmma_lab \
  -Xptxas -v 2>&1 | grep -E "error|warning|registers|spill|C75" || true
ls -la build/wgmma_lab/wgmma_lab
