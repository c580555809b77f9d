#!/usr/bin/env python3
"""MLX CPU baseline for `qmm bench --device cpu`.

Reads a JSON list of cases (written by the bench), times MLX's CPU quantized_matmul /
gather_qmm on the same shapes, formats and dtypes (MLX quantizes its own normal random weights
with the same mode/bits/group size; the kernel's speed does not depend on the values), and
writes {"mlx_version": ..., "times_us": {key: median microseconds}}.

MLX's CPU kernel is scalar and single threaded (~2.5 GFLOP/s for float32, about 10x slower for
bfloat16), so cases whose estimated time exceeds the budget are skipped and left out.
Usage: mlx_cpu_baseline.py IN.json OUT.json [--threads N] [--budget SECONDS]
"""
import json
import statistics
import sys
import time


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    inp, out = args[0], args[1]
    budget = 20.0
    if "--budget" in args:
        budget = float(args[args.index("--budget") + 1])
    try:
        import mlx.core as mx
    except Exception as e:  # noqa: BLE001
        print(f"mlx not importable: {e}")
        return 3
    mx.set_default_device(mx.cpu)
    cases = json.load(open(inp))
    dts = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}
    # Rough MLX CPU throughput (multiply-adds per second) per dtype, for skipping slow cases.
    rate = {"float32": 1.3e9, "bfloat16": 0.16e9, "float16": 0.035e9}
    times = {}
    for c in cases:
        dt = dts[c["dtype"]]
        M, N, K = c["M"], c["N"], c["K"]
        rows = c["tokens"] * c["top_k"] if c["op"] == "gather_qmm" else M
        est = rows * N * K / rate[c["dtype"]]
        if est > budget:
            print(f"  mlx: skip {c['key']} (estimated {est:.0f} s)")
            continue
        E = c["experts"] if c["op"] == "gather_qmm" else 1
        w = mx.random.normal((E, N, K) if c["op"] == "gather_qmm" else (N, K), key=mx.random.key(1)).astype(dt)
        q = mx.quantize(w, group_size=c["group_size"], bits=c["bits"], mode=c["mode"])
        wq, sc = q[0], q[1]
        bi = q[2] if len(q) > 2 else None
        mx.eval(wq, sc, *( [bi] if bi is not None else []))
        if c["op"] == "gather_qmm":
            T, k = c["tokens"], c["top_k"]
            idx = mx.argsort(mx.random.uniform(shape=(T, E), key=mx.random.key(2)), axis=-1)[:, :k]
            x = mx.random.normal((T, 1, 1, K), key=mx.random.key(3)).astype(dt)
            if c["sorted"]:
                flat = idx.flatten()
                order = mx.argsort(flat)
                xs = x.reshape(T, 1, K)[order // k]
                ridx = flat[order]
                mx.eval(xs, ridx)
                fn = lambda: mx.gather_qmm(xs, wq, sc, bi, rhs_indices=ridx, transpose=True,
                                           group_size=c["group_size"], bits=c["bits"],
                                           mode=c["mode"], sorted_indices=True)
            else:
                fn = lambda: mx.gather_qmm(x, wq, sc, bi, rhs_indices=idx, transpose=True,
                                           group_size=c["group_size"], bits=c["bits"], mode=c["mode"])
        else:
            x = mx.random.normal((M, K), key=mx.random.key(3)).astype(dt)
            mx.eval(x)
            fn = lambda: mx.quantized_matmul(x, wq, sc, bi, transpose=True, group_size=c["group_size"],
                                             bits=c["bits"], mode=c["mode"])
        mx.eval(fn())  # warm-up
        ts = []
        reps = 5 if est < 0.5 else (3 if est < 4 else 1)
        for _ in range(reps):
            t0 = time.perf_counter()
            mx.eval(fn())
            ts.append(time.perf_counter() - t0)
        times[c["key"]] = statistics.median(ts) * 1e6
        print(f"  mlx: {c['key']}: {times[c['key']]:.0f} us")
        sys.stdout.flush()
    json.dump({"mlx_version": mx.__version__, "times_us": times}, open(out, "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
