"""numpy float64 references for the qmm Python tests: unpacking MLX's storage format, decoding
the element and scale formats, dequantize, and (gathered) quantized matmul.

Written from docs/mlx-semantics.md (sections 2, 4, 5, 6, 9, 10), independently of the C++ code.
"""

from __future__ import annotations

import numpy as np

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BF16 = None

MODES = {  # mode -> (default group size, default bits)
    "affine": (64, 4),
    "mxfp4": (32, 4),
    "mxfp8": (32, 8),
    "nvfp4": (16, 4),
}

E2M1 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
)


def e4m3_decode(code: np.ndarray) -> np.ndarray:
    """E4M3 ("fn") bytes -> float64, as MLX's CPU decodes them (0x7F/0xFF -> +-480, no NaN)."""
    c = code.astype(np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 0xF
    m = c & 0x7
    normal = np.ldexp(1.0 + m / 8.0, e - 7)
    sub = np.ldexp(m / 8.0, -6)
    return sign * np.where(e == 0, sub, normal)


def e8m0_decode(code: np.ndarray) -> np.ndarray:
    return np.ldexp(1.0, code.astype(np.int64) - 127)


def unpack(w_q: np.ndarray, bits: int) -> np.ndarray:
    """Codes (int64) from packed uint32 rows: each row is a little-endian, LSB-first bit stream."""
    w_q = np.ascontiguousarray(w_q, dtype="<u4")
    lead = w_q.shape[:-1]
    by = w_q.view(np.uint8).reshape(lead + (w_q.shape[-1] * 4,))
    bitstream = np.unpackbits(by, axis=-1, bitorder="little")
    n = w_q.shape[-1] * 32 // bits
    b = bitstream.reshape(lead + (n, bits)).astype(np.int64)
    return (b << np.arange(bits, dtype=np.int64)).sum(axis=-1)


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of unpack (codes along the last axis -> uint32 words)."""
    codes = np.asarray(codes, dtype=np.int64)
    lead = codes.shape[:-1]
    bitstream = ((codes[..., None] >> np.arange(bits)) & 1).astype(np.uint8)
    bitstream = bitstream.reshape(lead + (codes.shape[-1] * bits,))
    by = np.packbits(bitstream, axis=-1, bitorder="little")
    return np.ascontiguousarray(by).view("<u4").astype(np.uint32)


def f64(a) -> np.ndarray:
    """Any array-like (qmm.array, numpy incl. bfloat16) as float64."""
    a = np.asarray(a)
    if BF16 is not None and a.dtype == BF16:
        a = a.astype(np.float32)
    return a.astype(np.float64)


def dequantize(w_q, scales, biases=None, group_size=None, bits=None, mode="affine",
               global_scale=None) -> np.ndarray:
    """float64 dequantize of MLX-format weights (exact decode; no rounding to an output dtype)."""
    gs0, b0 = MODES[mode]
    gs = group_size or gs0
    bits = bits or b0
    q = unpack(np.asarray(w_q), bits)
    scales = np.asarray(scales)
    if mode == "affine":
        s = f64(scales)
        b = f64(biases)
        s = np.repeat(s, gs, axis=-1)
        b = np.repeat(b, gs, axis=-1)
        return s * q + b
    if mode == "mxfp8":
        elem = e4m3_decode(q)
    else:
        elem = E2M1[q]
    sc = e4m3_decode(scales) if mode == "nvfp4" else e8m0_decode(scales)
    out = elem * np.repeat(sc, gs, axis=-1)
    if global_scale is not None:
        out = out * (float(np.asarray(global_scale)) / (448.0 * 6.0))
    return out


def matmul(x, w_hat, transpose=True) -> np.ndarray:
    """float64 x @ w_hat.T (transpose) or x @ w_hat, broadcasting batch axes like numpy."""
    x = f64(x)
    w = np.swapaxes(w_hat, -1, -2) if transpose else w_hat
    if x.ndim == 1:
        return x @ w
    return np.matmul(x, w)


def gather_matmul(x, w_hat, lhs=None, rhs=None, transpose=True) -> np.ndarray:
    """float64 gather_mm: out[i] = x[lhs[i]] @ w_hat[rhs[i]](.T) over flat batch indices."""
    x = f64(x)
    M, K = x.shape[-2:]
    xf = x.reshape(-1, M, K)
    wf = w_hat.reshape((-1,) + w_hat.shape[-2:])
    if lhs is None:
        lhs = np.arange(xf.shape[0]).reshape(x.shape[:-2])
    if rhs is None:
        rhs = np.arange(wf.shape[0]).reshape(w_hat.shape[:-2])
    lhs, rhs = np.broadcast_arrays(np.asarray(lhs), np.asarray(rhs))
    wsel = wf[rhs.reshape(-1)]
    if transpose:
        wsel = np.swapaxes(wsel, -1, -2)
    out = np.matmul(xf[lhs.reshape(-1)], wsel)
    return out.reshape(lhs.shape + out.shape[-2:])


def rel_err(y, ref) -> float:
    """Relative Frobenius error ||y - ref|| / ||ref|| (Decision 2), in float64."""
    y = f64(y)
    ref = f64(ref)
    denom = np.linalg.norm(ref.ravel())
    num = np.linalg.norm((y - ref).ravel())
    return float(num / denom) if denom > 0 else float(num)


# Decision 2: relative Frobenius tolerances of a matmul result by output dtype.
TOL = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}


def dtype_name(a) -> str:
    a = np.asarray(a) if not hasattr(a, "dtype") else a
    dt = a.dtype
    if BF16 is not None and dt == BF16:
        return "bfloat16"
    return getattr(dt, "name", str(dt))
