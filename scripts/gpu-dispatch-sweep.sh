#!/usr/bin/env bash
# The measurements behind the CUDA dispatch table (issue #6, "dispatch by measurement"): every M
# of `qmm bench --sweep` on the dense shapes of bench.md with each path forced
# (QMM_CUDA_PREFILL=cublas: decode kernel + dequantize/cuBLAS; =fused: fused kernel above the
# decode range; unset: the dispatch table), and gather_qmm at prefill token counts with and
# without the fused kernels, plus torch._grouped_mm on the same experts. Run on the GPU machine
# after scripts/gpu-check.sh --pack (carry build/gpu-carry); JSON and logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-sweep-out}
QMM=${QMM:-build/gpu-carry/qmm}
mkdir -p "$OUT"
for shape in 8192,8192 4096,4096 14336,4096 28672,8192 8192,28672; do
  for path in table fused cublas; do
    QMM_CUDA_PREFILL=$path timeout 150 "$QMM" bench --device gpu --sweep "$shape" \
      --out "$OUT/sweep-${shape/,/x}-$path.json" >"$OUT/sweep-${shape/,/x}-$path.log" 2>&1
  done
  echo "== $shape (table / fused / cublas paths, us)"
  paste <(awk '/^quantized_matmul/{print $5, $8, $9, $11}' "$OUT/sweep-${shape/,/x}-table.log") \
        <(awk '/^quantized_matmul/{print $9}' "$OUT/sweep-${shape/,/x}-fused.log") \
        <(awk '/^quantized_matmul/{print $9}' "$OUT/sweep-${shape/,/x}-cublas.log")
done
for path in table cublas; do
  QMM_CUDA_PREFILL=$path timeout 300 "$QMM" bench --device gpu --tokens "${TOKENS:-16,64,256,512,2048}" \
    --out "$OUT/moe-$path.json" >"$OUT/moe-$path.log" 2>&1
  echo "== gather_qmm ($path)"; grep '^gather_qmm' "$OUT/moe-$path.log" | cut -c1-120
done
PYTHONUNBUFFERED=1 timeout 300 python3 bench/gpu/torch_baselines.py --merge "$OUT/moe-table.json" \
  >"$OUT/torch.log" 2>&1
grep grouped_mm "$OUT/torch.log" | sort -u
