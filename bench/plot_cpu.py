#!/usr/bin/env python3
"""Draws CPU benchmark results (bench/results/cpu-*.json from `qmm bench --device cpu`) as PNGs.

Usage: plot_cpu.py RESULTS.json [OUT_DIR]   (default OUT_DIR: the JSON's folder)
Writes <stem>-time-vs-M.png (dense rows: time against M per (N, K), with the bytes/compute
floor and the OpenBLAS sgemm and MLX baselines) and <stem>-gemv-modes.png (M=1 rows per
format: achieved GB/s against the measured read bandwidth).
"""
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    path = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(path) or "."
    doc = json.load(open(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    rows = doc["rows"]
    title = f"{doc['device']} ({doc.get('kernels', '')}, {doc['date']})"

    # 1. time vs M per (N, K, dtype) for affine 4-bit g64 dense rows, cold where both exist.
    series = defaultdict(list)
    for r in rows:
        if r["op"] != "quantized_matmul" or r["mode"] != "affine" or r["bits"] != 4 or r["group_size"] != 64:
            continue
        if r["M"] <= 16 and not r.get("cold", True):
            continue
        series[(r["N"], r["K"], r["dtype"])].append(r)
    if series:
        keys = sorted(series)
        n = len(keys)
        cols = min(3, n)
        rws = (n + cols - 1) // cols
        fig, axes = plt.subplots(rws, cols, figsize=(5 * cols, 4 * rws), squeeze=False)
        for ax, k in zip(axes.flat, keys):
            pts = sorted(series[k], key=lambda r: r["M"])
            Ms = [r["M"] for r in pts]
            ax.loglog(Ms, [r["time_us"] for r in pts], "o-", label="qmm")
            ax.loglog(Ms, [r["floor_us"] for r in pts], "k--", label="floor (bytes, FMA peak)")
            b = [(r["M"], r["baselines_us"]["openblas_sgemm"]) for r in pts if "openblas_sgemm" in r["baselines_us"]]
            if b:
                ax.loglog(*zip(*b), "s-", label="OpenBLAS sgemm (dequantized f32)")
            m = [(r["M"], r["baselines_us"]["mlx"]) for r in pts if "mlx" in r["baselines_us"]]
            if m:
                ax.loglog(*zip(*m), "^-", label="MLX CPU")
            ax.set_title(f"N={k[0]} K={k[1]} {k[2]}")
            ax.set_xlabel("M")
            ax.set_ylabel("time (us)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.suptitle("affine 4-bit g64: " + title, fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{stem}-time-vs-M.png"), dpi=110)
        plt.close(fig)

    # 2. GEMV (M=1, cold) per format: GB/s against the read bandwidth.
    g = [r for r in rows if r["op"] == "quantized_matmul" and r["M"] == 1 and r.get("cold", True)]
    if g:
        labels = [f"{r['mode']} {r['bits']}b g{r['group_size']} {r['dtype'][:4]}" for r in g]
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(g)), 4))
        ax.bar(range(len(g)), [r["GBps"] for r in g], color="tab:blue", label="qmm (packed bytes / time)")
        bw = doc["ceilings"]["read_GBps"]
        ax.axhline(bw, color="k", ls="--", label=f"measured read bandwidth {bw:.1f} GB/s")
        ax.axhline(0.85 * bw, color="tab:green", ls=":", label="85% goal")
        ax.set_xticks(range(len(g)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("GB/s")
        ax.set_title("GEMV M=1, N=K=4096, cold weights: " + title, fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{stem}-gemv-modes.png"), dpi=110)
        plt.close(fig)
    print("wrote PNGs to", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
