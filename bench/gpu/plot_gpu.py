#!/usr/bin/env python3
"""Draws GPU benchmark results (bench/results/gpu-*.json from `qmm bench --device gpu`, with the
torch baselines merged in by bench/gpu/torch_baselines.py) as PNGs.

Usage: plot_gpu.py RESULTS.json [OUT_DIR]   (default OUT_DIR: the JSON's folder)
Writes <stem>-dense-time-vs-M.png (affine 4-bit g64 bf16: time against M per (N, K), with the
bytes/compute floor, cuBLAS bf16 on the dequantized weight and tinygemm), <stem>-modes.png
(8192^2, M=1 and 16: achieved GB/s per format against the measured read bandwidth) and
<stem>-moe.png (gather_qmm: time against tokens per model, sorted/unsorted, with the floor
and torch._grouped_mm).
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
    title = f"{doc['device']}, {doc['date']}"

    dense = defaultdict(list)
    for r in rows:
        if r["op"] == "quantized_matmul" and r["mode"] == "affine" and r["bits"] == 4 and \
                r["group_size"] == 64 and r["dtype"] == "bfloat16":
            dense[(r["N"], r["K"])].append(r)
    shapes = sorted(k for k, v in dense.items() if len(v) > 2)
    if shapes:
        cols = 3
        rws = (len(shapes) + cols - 1) // cols
        fig, axes = plt.subplots(rws, cols, figsize=(5 * cols, 4 * rws), squeeze=False)
        for ax, sh in zip(axes.flat, shapes):
            rs = sorted(dense[sh], key=lambda r: r["M"])
            ms = [r["M"] for r in rs]
            ax.plot(ms, [r["time_us"] for r in rs], "o-", label="qmm")
            ax.plot(ms, [r["floor_us"] for r in rs], "k--", label="floor")
            for base, st in (("cublas_bf16", "s-"), ("tinygemm", "^-")):
                pts = [(r["M"], r["baselines_us"][base]) for r in rs if base in r.get("baselines_us", {})]
                if pts:
                    ax.plot(*zip(*pts), st, label=base)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"N={sh[0]} K={sh[1]}")
            ax.set_xlabel("M")
            ax.set_ylabel("us")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(shapes):]:
            ax.axis("off")
        fig.suptitle(f"quantized_matmul affine 4-bit g64, bf16 x - {title}")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{stem}-dense-time-vs-M.png"), dpi=90)

    modes = [r for r in rows if r["op"] == "quantized_matmul" and r["N"] == 8192 and r["K"] == 8192
             and r["M"] in (1, 16)]
    if modes:
        fig, ax = plt.subplots(figsize=(12, 4.5))
        labels, vals1, vals16 = [], [], []
        keyed = defaultdict(dict)
        for r in modes:
            keyed[(r["mode"], r["bits"], r["group_size"], r["dtype"])][r["M"]] = r["effective_GBps"]
        for k, v in sorted(keyed.items()):
            labels.append(f"{k[0]}{k[1]} g{k[2]}\n{k[3]}")
            vals1.append(v.get(1, 0))
            vals16.append(v.get(16, 0))
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], vals1, 0.4, label="M=1")
        ax.bar([x + 0.2 for x in xs], vals16, 0.4, label="M=16")
        ax.axhline(doc["ceilings"]["read_GBps"], color="k", ls="--", label="measured read BW")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("effective GB/s (packed bytes / time)")
        ax.set_title(f"8192 x 8192 by format - {title}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{stem}-modes.png"), dpi=90)

    moe = defaultdict(list)
    for r in rows:
        if r["op"] == "gather_qmm":
            moe[r["model"]].append(r)
    if moe:
        models = sorted(moe)
        cols = 3
        rws = (len(models) + cols - 1) // cols
        fig, axes = plt.subplots(rws, cols, figsize=(5 * cols, 4 * rws), squeeze=False)
        for ax, m in zip(axes.flat, models):
            for srt, st in ((False, "o-"), (True, "s-")):
                rs = sorted((r for r in moe[m] if r["sorted"] == srt), key=lambda r: r["tokens"])
                if rs:
                    ax.plot([r["tokens"] for r in rs], [r["time_us"] for r in rs], st,
                            label="qmm sorted" if srt else "qmm unsorted")
            rs = sorted((r for r in moe[m] if not r["sorted"]), key=lambda r: r["tokens"])
            ax.plot([r["tokens"] for r in rs], [r["floor_us"] for r in rs], "k--", label="floor")
            pts = [(r["tokens"], r["baselines_us"]["grouped_mm"]) for r in rs
                   if "grouped_mm" in r.get("baselines_us", {})]
            if pts:
                ax.plot(*zip(*pts), "^-", label="torch._grouped_mm bf16")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(m)
            ax.set_xlabel("tokens")
            ax.set_ylabel("us")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(models):]:
            ax.axis("off")
        fig.suptitle(f"gather_qmm - {title}")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{stem}-moe.png"), dpi=90)
    print("charts written to", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
