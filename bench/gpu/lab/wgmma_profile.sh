#!/usr/bin/env bash
# On the GPU machine: ncu report of one launch of the hand-written kernel in the lab, with the
# warp-stall breakdown and the SASS lines with the most stall samples.
#   bench/gpu/lab/wgmma_profile.sh NAME SKIP CASE
set -uo pipefail
name=$1 skip=$2 case=$3
OUT=${OUT:-build/profile-out}
ncu --clock-control none -k regex:fused_wgmma_kernel --launch-skip "$skip" --launch-count 1 \
  --set full -f -o "$OUT/$name" build/wgmma_lab/wgmma_lab "$case" >"$OUT/$name.log" 2>&1
ncu -i "$OUT/$name.ncu-rep" --page details >"$OUT/$name.txt" 2>&1
ncu -i "$OUT/$name.ncu-rep" --page raw --csv >"$OUT/$name.raw.csv" 2>&1
ncu -i "$OUT/$name.ncu-rep" --page source --csv --print-source sass >"$OUT/$name.sass.csv" 2>&1
grep -E "fused_wgmma_kernel<|Duration|DRAM Throughput|Issued Warp|Eligible Warps" "$OUT/$name.txt"
python3 - "$OUT/$name.raw.csv" "$OUT/$name.sass.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
hdr, vals = rows[0], rows[2]
st = [(float(v), h) for h, v in zip(hdr, vals)
      if h.startswith("smsp__average_warp_latency_issue_stalled_") or
      h.startswith("smsp__pcsamp_warps_issue_stalled_") and not h.endswith("_not_issued")]
for v, h in sorted(st, reverse=True)[:12]:
    print(f"  {v:12.1f} {h}")
rows = list(csv.reader(open(sys.argv[2])))
hdr = rows[1]
ci, si = hdr.index("Warp Stall Sampling (All Samples)"), hdr.index("Source")
data = [(int(r[ci]), i, r[si]) for i, r in enumerate(rows[2:]) if r[ci].isdigit()]
tot = sum(d[0] for d in data) or 1
for d in sorted(data, reverse=True)[:16]:
    print(f"  {d[0] * 100 / tot:5.1f}% #{d[1]} {d[2][:90]}")
PY
