#!/usr/bin/env python3
"""Prints a Markdown table of a CPU results JSON (qmm bench --device cpu) against the goals of
issue 4: per row the time, GB/s and % of the read bandwidth measured just before the row,
GFLOP/s and % of the FMA peak measured just before the row, and the ratios to OpenBLAS sgemm
and MLX measured in the same run.  Usage: summarize_cpu.py RESULTS.json [--tag goal]"""
import json
import sys


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    doc = json.load(open(sys.argv[1]))
    tag = sys.argv[sys.argv.index("--tag") + 1] if "--tag" in sys.argv else ""
    c = doc["ceilings"]
    print(f"{doc['device']}, kernels {doc.get('kernels')}, precision {doc.get('precision')}, {doc['date']}; "
          f"run-start ceilings: read {c['read_GBps']:.1f} GB/s, FMA {c['fma_gflops']:.0f} GFLOP/s, "
          f"OpenBLAS sgemm 2048^3 {c.get('openblas_sgemm_gflops', 0):.0f} GFLOP/s\n")
    print("| case | kernel | time us | GB/s | % read BW | GFLOP/s | % FMA | x OpenBLAS | x MLX | rel err |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in doc["rows"]:
        if tag and not r.get("tag", "").startswith(tag):
            continue
        bw = r.get("read_GBps_near", c["read_GBps"])
        fma = r.get("fma_gflops_near", c["fma_gflops"])
        case = f"{r['op'].replace('quantized_matmul', 'qmm')} {r['mode']} {r['bits']}b g{r['group_size']} {r['dtype']} M={r['M']} N={r['N']} K={r['K']}"
        if r["op"] == "gather_qmm":
            case += f" E={r['experts']} top{r['top_k']} T={r['tokens']}{' sorted' if r['sorted'] else ''}"
        if not r.get("cold", True):
            case += " (hot)"
        b = r["baselines_us"]
        xb = f"{b['openblas_sgemm'] / r['time_us']:.2f}" if "openblas_sgemm" in b else "-"
        xm = f"{b['mlx'] / r['time_us']:.0f}" if "mlx" in b else "-"
        print(f"| {case} | {r['kernel']} | {r['time_us']:.0f} | {r['GBps']:.1f} | {100 * r['GBps'] / bw:.0f}% | "
              f"{r['GFLOPps']:.1f} | {100 * r['GFLOPps'] / fma:.0f}% | {xb} | {xm} | {r['rel_err']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
