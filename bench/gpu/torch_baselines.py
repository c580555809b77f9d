#!/usr/bin/env python3
"""Torch baselines for `qmm bench --device gpu`, run on the same GPU machine in the same session.

For every row of the C++ benchmark's JSON that torch can serve, measures on the same shapes and
the same quantization format (MLX affine 4-bit, mapped exactly as bench.md says):
  - tinygemm: torch._weight_int4pack_mm (bf16, 4-bit, group 32/64/128/256); MLX -> tinygemm:
    swap the two nibbles of every byte, scale = s, zero = b + 8*s;
  - grouped_mm: torch._grouped_mm (bf16) on the dequantized experts, rows sorted by expert.
Each kernel is first checked against a float32 reference of x @ (s*q + b)^T on fresh random
data, then timed by CUDA-graph replays over copies of the weights larger than 4x L2 (median).
The numbers are merged into the rows' "baselines_us" (in place) with --merge FILE.
"""
import argparse
import json
import statistics
import sys

import torch


def graph_time_us(fn, reps, iters=15):
    """Median time per call (us) of `reps` calls captured in one CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for r in range(reps):
            fn(r)  # warm-up
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for r in range(reps):
            fn(r)
    times = []
    for _ in range(iters + 2):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / reps)
    return statistics.median(times[2:])


def l2_bytes():
    return torch.cuda.get_device_properties(0).L2_cache_size


def mlx_affine4(N, K, g, dev):
    """Random MLX affine 4-bit weights: codes (N, K) uint8, scales/biases (N, K/g) bf16."""
    q = torch.randint(0, 16, (N, K), dtype=torch.uint8, device=dev)
    s = (torch.rand(N, K // g, device=dev) * 0.02 + 0.001).to(torch.bfloat16)
    b = (torch.randn(N, K // g, device=dev) * 0.05).to(torch.bfloat16)
    return q, s, b


def dequant(q, s, b, g):
    N, K = q.shape
    return (q.float().view(N, K // g, g) * s.float()[..., None] + b.float()[..., None]).view(N, K)


def tinygemm_us(M, N, K, g):
    if g not in (32, 64, 128, 256) or N % 8 or K % 128:
        return None, None
    dev = "cuda"
    q, s, b = mlx_affine4(N, K, g, dev)
    # MLX bytes hold element 2j in the low nibble; tinygemm wants it in the high nibble.
    w_u8 = ((q[:, 0::2] << 4) | q[:, 1::2]).contiguous()
    packed = torch._convert_weight_to_int4pack(w_u8, 8)
    sz = torch.stack([s.float(), b.float() + 8 * s.float()], dim=-1).to(torch.bfloat16)  # (N, K/g, 2)
    sz = sz.transpose(0, 1).contiguous()  # (K/g, N, 2)
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    y = torch._weight_int4pack_mm(x, packed, g, sz)
    ref = x.float() @ dequant(q, s, b, g).T
    err = ((y.float() - ref).norm() / ref.norm()).item()
    bytes_w = N * K // 2 + N * (K // g) * 4
    copies = max(2, min(64, -(-4 * l2_bytes() // bytes_w)))
    ws = [(packed.clone(), sz.clone()) for _ in range(copies)]
    t = graph_time_us(lambda r: torch._weight_int4pack_mm(x, ws[r % copies][0], g, ws[r % copies][1]), copies)
    return t, err


def grouped_mm_us(T, top, E, N, K, sorted_rows=True):
    dev = "cuda"
    gen = torch.Generator(device="cpu").manual_seed(T * 1000 + E)
    logits = torch.randn(T, E, generator=gen)
    idx = logits.topk(top, dim=-1).indices.flatten()
    counts = torch.bincount(idx, minlength=E)
    offs = counts.cumsum(0).to(torch.int32).to(dev)
    B = T * top
    w = (torch.randn(E, N, K, device=dev) * 0.02).to(torch.bfloat16)
    x = torch.randn(B, K, device=dev, dtype=torch.bfloat16)
    y = torch._grouped_mm(x, w.transpose(-2, -1), offs=offs)
    # Check against a per-expert loop.
    ref = torch.empty(B, N, device=dev)
    start = 0
    for e in range(E):
        end = int(offs[e])
        if end > start:
            ref[start:end] = x[start:end].float() @ w[e].float().T
        start = end
    err = ((y.float() - ref).norm() / ref.norm()).item()
    wbytes = E * N * K * 2
    copies = max(1, min(4, -(-4 * l2_bytes() // wbytes)))
    ws = [w] + [w.clone() for _ in range(copies - 1)]
    t = graph_time_us(lambda r: torch._grouped_mm(x, ws[r % copies].transpose(-2, -1), offs=offs), max(copies, 2))
    return t, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--merge", help="JSON written by `qmm bench --device gpu` (updated in place)")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    doc = None
    if args.merge:
        with open(args.merge) as f:
            doc = json.load(f)
        rows = doc["rows"]
    else:
        rows = [{"op": "quantized_matmul", "mode": "affine", "bits": 4, "group_size": 64, "dtype": "bfloat16",
                 "M": m, "N": n, "K": k, "baselines_us": {}}
                for (n, k) in [(4096, 4096), (8192, 8192), (14336, 4096), (16384, 16384)] for m in (1, 16)]
    cache = {}
    for r in rows:
        try:
            if r["op"] == "quantized_matmul" and r["mode"] == "affine" and r["bits"] == 4 and \
                    r["dtype"] == "bfloat16" and r["M"] <= 64:
                key = ("tiny", r["M"], r["N"], r["K"], r["group_size"])
                if key not in cache:
                    cache[key] = tinygemm_us(r["M"], r["N"], r["K"], r["group_size"])
                t, err = cache[key]
                if t is not None:
                    r.setdefault("baselines_us", {})["tinygemm"] = t
                    r.setdefault("baseline_rel_err", {})["tinygemm"] = err
                    print(f"tinygemm M={r['M']} N={r['N']} K={r['K']} g={r['group_size']}: {t:.2f} us (err {err:.1e})")
            elif r["op"] == "gather_qmm" and r["dtype"] == "bfloat16":
                key = ("gmm", r["tokens"], r["top_k"], r["experts"], r["N"], r["K"])
                if key not in cache:
                    cache[key] = grouped_mm_us(r["tokens"], r["top_k"], r["experts"], r["N"], r["K"])
                t, err = cache[key]
                r.setdefault("baselines_us", {})["grouped_mm"] = t
                r.setdefault("baseline_rel_err", {})["grouped_mm"] = err
                print(f"grouped_mm {r.get('model')} T={r['tokens']}: {t:.2f} us (err {err:.1e})")
        except Exception as e:  # a baseline that torch cannot run is left out, as bench.md says
            print(f"skipped {r.get('op')} {r.get('M')} {r.get('N')} {r.get('K')}: {e}", file=sys.stderr)
        sys.stdout.flush()
    if doc is not None:
        with open(args.merge, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"merged into {args.merge}")


if __name__ == "__main__":
    main()
