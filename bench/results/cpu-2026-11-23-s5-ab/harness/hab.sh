#!/bin/bash
# hab.sh ROUNDS "ARGS" bin...: alternating rounds (order rotated), median of per-run medians
R=$1; ARGS=$2; shift 2; bins=("$@"); n=${#bins[@]}
for r in $(seq $R); do for i in $(seq 0 $((n-1))); do b=${bins[$(( (i + r) % n ))]}; echo "$b $(QMM_NUM_THREADS=2 ./$b $ARGS | sed -E 's/.*median ([0-9.]+) us  min ([0-9.]+).*/\1 \2/')"; done; done | python3 -c '
import sys, statistics
d={}
for l in sys.stdin:
    k,a,b=l.split(); d.setdefault(k,[]).append((float(a),float(b)))
for k,v in sorted(d.items()):
    print(f"{k:10s} med {statistics.median([a for a,b in v]):8.1f}  best-min {min(b for a,b in v):8.1f}  meds {[a for a,b in v]}")
'
