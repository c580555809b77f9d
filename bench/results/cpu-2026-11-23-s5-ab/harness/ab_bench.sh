#!/bin/bash
# Alternating qmm bench rounds: base (HEAD e891715 built in /tmp/s5base) vs new (build/cpu-helper).
cd /work/main
D=bench/results/cpu-2026-11-23-s5-ab
B=/tmp/s5base/build/tools/qmm/qmm
N=build/cpu-helper/tools/qmm/qmm
run() { # which round set filter
  local bin=$B; [ $1 = new ] && bin=$N
  echo "$(date +%T) $1 r$2 $3 load: $(cut -d' ' -f1-3 /proc/loadavg) top: $(top -bn1 | sed -n 8,9p | awk '{print $9"%"$12}' | tr '\n' ' ')"
  QMM_NUM_THREADS=2 $bin bench --device cpu --no-mlx --reps 7 --filter "$4" --out $D/$3-$1-$2.json > $D/$3-$1-$2.log 2>&1
}
for r in 1 2 3; do
  if [ $r = 2 ]; then order="new base"; else order="base new"; fi
  for w in $order; do
    [ "$r$w" = "1base" ] || run $w $r gather gather
    run $w $r gemv '|1|4096|4096|'
  done
done
echo "$(date +%T) done"
