#!/usr/bin/env bash
# Builds the fused-kernel lab here (CUTLASS instances compile for minutes each; two at a time)
# into build/fused_lab/fused_lab, to be carried to the GPU machine and run there:
#   build/fused_lab/fused_lab [M,N,K[,bits] ...]
# Configurations: LAB_CFGS="bits:tn:tm:tk:streamk ..." (one object each, kept between builds
# while fused_lab_cfg.cu and fused_gemm.cuh are unchanged).
set -euo pipefail
cd "$(dirname "$0")/../../.."
cutlass=$(ls -d .venv/lib/python3*/site-packages/cutlass_library/source | head -1)
out=build/fused_lab
mkdir -p "$out"
FLAGS=(-O3 -DNDEBUG -std=c++20 -arch=sm_90a --expt-relaxed-constexpr -diag-suppress=2908 -Isrc -Iinclude
  -isystem "$cutlass/include" -isystem "$cutlass/tools/util/include")
cfgs=${LAB_CFGS:-"4:128:64:64:1 4:256:64:64:1 4:128:128:64:1 4:128:256:64:0 4:128:256:64:1 4:256:128:64:1 8:128:64:64:1 8:128:128:64:1 8:256:128:64:1 8:128:256:64:0"}
objs=()
for c in $cfgs; do
  IFS=: read -r bits tn tm tk sk <<<"$c"
  o="$out/cfg_${bits}_${tn}_${tm}_${tk}_${sk}.o"
  objs+=("$o")
  if [ -f "$o" ] && [ "$o" -nt bench/gpu/lab/fused_lab_cfg.cu ] &&
    [ "$o" -nt src/cuda/fused/fused_gemm.cuh ]; then continue; fi
  while (($(jobs -rp | wc -l) >= 2)); do wait -n; done
  nvcc "${FLAGS[@]}" -DLAB_BITS="$bits" -DLAB_TN="$tn" -DLAB_TM="$tm" -DLAB_TK="$tk" \
    -DLAB_SK="$sk" -c bench/gpu/lab/fused_lab_cfg.cu -o "$o" &
done
while (($(jobs -rp | wc -l) > 0)); do wait -n; done
nvcc "${FLAGS[@]}" bench/gpu/lab/fused_lab.cu "${objs[@]}" -lcublas -o "$out/fused_lab"
ls -la "$out/fused_lab"
