# A/B table from bench/results/cpu-2026-11-23-s5-ab/{set}-{base,new}-{round}.json: medians over rounds.
import glob, json, os, re, statistics, sys
d = sys.argv[1]
rows = {}
order = []
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    m = re.match(r"(\w+)-(base|new)-(\d+)\.json", os.path.basename(f))
    if not m: continue
    which = m.group(2)
    for r in json.load(open(f))["rows"]:
        name = f"{r['op']} {r['mode']} {r['bits']}b g{r['group_size']} {r['dtype']} M={r['M']} N={r['N']} K={r['K']}"
        if r["op"] == "gather_qmm": name += f" E={r['experts']} top{r['top_k']} T={r['tokens']}"
        if not r.get("cold", True): name += " (hot)"
        if name not in rows: rows[name] = {"base": [], "new": []}; order.append(name)
        blas = r.get("baselines_us", {}).get("openblas_sgemm") or r.get("sgemm_us")
        rows[name][which].append((r["time_us"], r["efficiency"], r.get("read_GBps_near"), (blas / r["time_us"]) if blas else None))
def med(v): 
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
print("| case | runs | base us | new us | speedup | base % read BW | new % read BW | base x OpenBLAS | new x OpenBLAS |")
print("|---|---|---|---|---|---|---|---|---|")
for n in order:
    b, w = rows[n]["base"], rows[n]["new"]
    bt, nt = med([x[0] for x in b]), med([x[0] for x in w])
    be, ne = med([x[1] for x in b]), med([x[1] for x in w])
    bx, nx = med([x[3] for x in b]), med([x[3] for x in w])
    f = lambda x, s: "-" if x is None else s % x
    print(f"| {n} | {len(b)}+{len(w)} | {f(bt,'%.0f')} | {f(nt,'%.0f')} | {f(bt/nt if bt and nt else None,'%.2f')} | {f(be*100 if be else None,'%.0f%%')} | {f(ne*100 if ne else None,'%.0f%%')} | {f(bx,'%.2f')} | {f(nx,'%.2f')} |")
