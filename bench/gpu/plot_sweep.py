#!/usr/bin/env python3
"""Charts of the dispatch sweeps (scripts/gpu-dispatch-sweep.sh) and the MoE prefill rows.

usage: plot_sweep.py RESULTS_DIR
  RESULTS_DIR holds sweep-<N>x<K>-<path>.json (path: table, fused, cublas) and moe-*.json
  written by `qmm bench --device gpu --sweep/--tokens`; writes sweep-<N>x<K>.png (time per M
  for each path and cuBLAS bf16 on the dequantized weight) and moe.png (qmm over
  torch._grouped_mm per model and token count) into the same directory.
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with open(path) as f:
        return json.load(f)["rows"]


def plot_sweeps(d):
    shapes = sorted({os.path.basename(p).split("-")[1] for p in glob.glob(f"{d}/sweep-*-table.json")})
    for shape in shapes:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        cublas_ref = None
        for path, style in (("table", "-o"), ("fused", "--s"), ("cublas", ":^")):
            p = f"{d}/sweep-{shape}-{path}.json"
            if not os.path.exists(p):
                continue
            r = rows(p)
            ax.plot([x["M"] for x in r], [x["time_us"] for x in r], style, ms=3,
                    label={"table": "qmm (dispatch table)", "fused": "fused kernel forced",
                           "cublas": "decode + dequantize/cuBLAS"}[path])
            cublas_ref = cublas_ref or r
        ax.plot([x["M"] for x in cublas_ref], [x["baselines_us"]["cublas_bf16"] for x in cublas_ref], "k-", lw=1,
                label="cuBLAS bf16, dequantized W")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("M (rows of x)")
        ax.set_ylabel("time (us, median)")
        ax.set_title(f"H100, affine 4-bit g64, bf16 x, N x K = {shape}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(f"{d}/sweep-{shape}.png", dpi=110)
        plt.close(fig)


def plot_moe(d):
    p = f"{d}/moe-final.json"
    if not os.path.exists(p):
        return
    r = [x for x in rows(p) if x.get("sorted") and "grouped_mm" in x.get("baselines_us", {})]
    models = sorted({x["model"] for x in r})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for m in models:
        pts = sorted((x["tokens"], x["baselines_us"]["grouped_mm"] / x["time_us"]) for x in r
                     if x["model"] == m)
        ax.plot([t for t, _ in pts], [s for _, s in pts], "-o", ms=3, label=m)
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens T")
    ax.set_ylabel("speed vs torch._grouped_mm bf16 (x)")
    ax.set_title("H100 gather_qmm (sorted), affine 4-bit g64 / mxfp4, bf16 x")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{d}/moe.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    plot_sweeps(sys.argv[1])
    plot_moe(sys.argv[1])
