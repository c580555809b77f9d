"""MLX's quantization test catalogue (python/tests/test_quantized.py, tests/ops_tests.cpp; see
docs/mlx-semantics.md section 14) ported to qmm, checked against numpy float64 references.

Matmul results are compared with the float64 product of x and the exactly decoded weights,
with the relative Frobenius tolerances of Decision 2 (float32 1e-5, float16 2e-3, bfloat16
1e-2); MLX's own max-abs tolerances are kept where a test states them.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest

import qmm
import qmm_ref as R

BF16 = ml_dtypes.bfloat16


def normal(rng, shape, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def quantize_np(w, group_size=None, bits=None, mode="affine", **kw):
    return [np.asarray(a) for a in qmm.quantize(w, group_size, bits, mode, **kw)]


def check_qmm(x, w, transpose, group_size=None, bits=None, mode="affine", tol=None):
    """Quantizes w, multiplies, compares with the float64 reference; returns the error."""
    out = quantize_np(w, group_size, bits, mode)
    if mode == "affine":
        w_q, scales, biases = out
    else:
        (w_q, scales), biases = out, None
    y = qmm.quantized_matmul(x, w_q, scales, biases, transpose, group_size, bits, mode)
    w_hat = R.dequantize(w_q, scales, biases, group_size, bits, mode)
    ref = R.matmul(x, w_hat, transpose)
    assert y.shape == ref.shape
    err = R.rel_err(y, ref)
    assert err <= (tol or R.TOL[R.dtype_name(y)]), err
    return y, ref


# 1. test_quantize_dequantize ------------------------------------------------------------------
@pytest.mark.parametrize("gs,bits", list(itertools.product([32, 64, 128], [2, 3, 5, 6, 4, 8])))
def test_quantize_dequantize(rng, gs, bits):
    w = normal(rng, (128, 512))
    w_q, scales, biases = qmm.quantize(w, gs, bits)
    assert w_q.shape == (128, 512 * bits // 32) and w_q.dtype == qmm.uint32
    assert scales.shape == (128, 512 // gs) and scales.dtype == qmm.float32
    w_hat = np.asarray(qmm.dequantize(w_q, scales, biases, gs, bits))
    err = np.abs(w - w_hat).reshape(128, -1, gs)
    bound = np.abs(np.asarray(scales))[..., None] + 1e-6
    assert (err <= bound).all()
    # An independent float64 decode of the same storage agrees with qmm's dequantize.
    ref = R.dequantize(w_q, scales, biases, gs, bits)
    np.testing.assert_allclose(w_hat, ref, rtol=1e-6, atol=1e-6)
    # Zeros stay exactly zero.
    z = np.zeros((256, 512), np.float32)
    zq = qmm.quantize(z, gs, bits)
    assert (np.asarray(qmm.dequantize(*zq, gs, bits)) == 0).all()


# 2.-4. fp modes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,gs", [("mxfp4", 32), ("nvfp4", 16)])
def test_fp4_quantize_dequantize(rng, mode, gs):
    w = R.E2M1[rng.integers(0, 16, (128, 512))].reshape(-1, gs)
    w[:, 0] = 6
    w = (w + 3e-6).astype(BF16)
    w_q, scales = qmm.quantize(w, gs, 4, mode)
    assert scales.dtype == qmm.uint8
    w_hat = qmm.dequantize(w_q, scales, group_size=gs, bits=4, mode=mode)
    assert w_hat.dtype == qmm.bfloat16  # fp modes default to bfloat16 output (Decision 7)
    np.testing.assert_allclose(R.f64(w_hat), R.f64(w), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(R.f64(w_hat), R.dequantize(w_q, scales, None, gs, 4, mode))
    z = np.zeros((128, 512), BF16)
    assert (R.f64(qmm.dequantize(*qmm.quantize(z, mode=mode), mode=mode)) == 0).all()


def test_mxfp8_quantize_dequantize(rng):
    w = rng.uniform(-1, 1, (512, 32)).astype(BF16)
    w_q, scales = qmm.quantize(w, 32, 8, "mxfp8")
    w_hat = qmm.dequantize(w_q, scales, group_size=32, bits=8, mode="mxfp8")
    np.testing.assert_allclose(R.f64(w_hat), R.f64(w), rtol=0.1, atol=0.1)
    np.testing.assert_array_equal(R.f64(w_hat), R.dequantize(w_q, scales, None, 32, 8, "mxfp8"))
    z = np.zeros((512, 32), BF16)
    assert (R.f64(qmm.dequantize(*qmm.quantize(z, mode="mxfp8"), mode="mxfp8")) == 0).all()


def test_nvfp4_per_group_scales():
    # Rows alternating 6 * 2^-9 and 6.0 must round-trip: the scale is per group of 16.
    w = np.where(np.arange(64)[:, None] % 2 == 0, 6 * 2.0**-9, 6.0) * np.ones((64, 16))
    w = w.astype(BF16)
    w_q, scales = qmm.quantize(w, mode="nvfp4")
    w_hat = qmm.dequantize(w_q, scales, mode="nvfp4", dtype=qmm.bfloat16)
    np.testing.assert_allclose(R.f64(w_hat), R.f64(w), rtol=1e-5, atol=1e-6)


def test_nvfp4_global_scale(rng):
    w = R.E2M1[rng.integers(0, 16, (128, 512))].reshape(-1, 16)
    w[:, 0] = 6
    w = w.astype(np.float32)
    g = np.array(np.abs(w).max(), np.float32)
    w_q, scales = qmm.quantize(w, mode="nvfp4", global_scale=g)
    w_hat = qmm.dequantize(w_q, scales, mode="nvfp4", global_scale=g, dtype=qmm.float32)
    np.testing.assert_allclose(R.f64(w_hat), w, rtol=1e-5, atol=1e-5)


# 6. test_qmm ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "gs,bits,M,N,K,transpose",
    list(itertools.product([128, 64, 32], [2, 4, 8], [8, 32, 33, 64], [128, 256], [128, 256],
                           [True, False])),
)
def test_qmm(rng, gs, bits, M, N, K, transpose):
    x = normal(rng, (M, K), 1 / np.sqrt(K))
    w = normal(rng, (N, K) if transpose else (K, N), 1 / np.sqrt(K))
    check_qmm(x, w, transpose, gs, bits)


# 7. test_qmm_large_dims -------------------------------------------------------------------------
@pytest.mark.parametrize("M,N", [(16, 32840), (33, 32840), (33000, 64)])
def test_qmm_large_dims(rng, M, N):
    K = 128
    x = normal(rng, (M, K), 1 / np.sqrt(K))
    w = normal(rng, (N, K), 1 / np.sqrt(K))
    check_qmm(x, w, True, 64, 4)


# 8. test_qmm_non_transposed (the CPU-sized part) ------------------------------------------------
@pytest.mark.parametrize(
    "mode,gs,bits,M",
    [(m, g, b, M) for (m, g, b) in [("affine", 64, 4), ("affine", 128, 4), ("affine", 64, 8),
                                   ("mxfp4", 32, 4), ("nvfp4", 16, 4), ("mxfp8", 32, 8)]
     for M in (1, 2, 31, 33, 64, 97, 129)],
)
def test_qmm_non_transposed(rng, mode, gs, bits, M):
    K, N = 512, 1024
    x = normal(rng, (M, K), 1 / np.sqrt(K))
    w = normal(rng, (K, N), 1 / np.sqrt(K))
    check_qmm(x, w, False, gs, bits, mode)


@pytest.mark.parametrize("batch,M", [((2,), 33), ((2, 3), 33), ((2,), 250)])
def test_qmm_non_transposed_batched_x(rng, batch, M):
    K, N = 512, 1024
    x = normal(rng, batch + (M, K), 1 / np.sqrt(K))
    w = normal(rng, (K, N), 1 / np.sqrt(K))
    check_qmm(x, w, False, 64, 4)


# 12. test_qmm_shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(3, 256), (2, 1, 7, 256)])
def test_qmm_shapes(rng, x_shape):
    x = normal(rng, x_shape)
    for transpose, w_shape in [(True, (32, 256)), (False, (256, 256))]:
        w = normal(rng, w_shape)
        y, ref = check_qmm(x, w, transpose, 64, 4)
        assert np.abs(R.f64(y) - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


# 13. test_qmv -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "gs,bits,M,N,B",
    [c for c in itertools.product([128, 64, 32], [2, 3, 4, 5, 6, 8], [256, 512, 67], [64, 256],
                                  [0, 1, 3, 8]) if c[0] <= c[3]],
)
def test_qmv(rng, gs, bits, M, N, B):
    shape = (3, 1, N) if B == 0 else (B, 1, N)
    x = normal(rng, shape, 1 / np.sqrt(N))
    w = normal(rng, (M, N) if B == 0 else (B, M, N), 1 / np.sqrt(N))
    check_qmm(x, w, True, gs, bits)


# 14. test_fp_qmv ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode,M,N,B",
    list(itertools.product(["mxfp4", "nvfp4", "mxfp8"], [256, 512, 67, 5, 7], [64, 256],
                           [0, 1, 3, 8])) + [("nvfp4", 128, 48, 0)],
)
def test_fp_qmv(rng, mode, M, N, B):
    shape = (3, 1, N) if B == 0 else (B, 1, N)
    x = normal(rng, shape)
    w = normal(rng, (M, N) if B == 0 else (B, M, N))
    check_qmm(x, w, True, None, None, mode)


# 15. test_fp_qmv_large_output, all three activation dtypes ------------------------------------
@pytest.mark.parametrize("B,dtype", list(itertools.product([1, 2], [np.float32, np.float16, BF16])))
def test_fp_qmv_large_output(rng, B, dtype):
    K, N = 512, 4096
    x = normal(rng, (B, 1, K), dtype=dtype)
    w = normal(rng, (B, N, K), dtype=dtype)
    y, _ = check_qmm(x, w, True, None, None, "nvfp4")
    assert y.dtype == R.dtype_name(x)


# 16. test_qmv_wide ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "M,N,B,cfg",
    list(itertools.product([2, 3, 4, 5, 6, 7, 9], [256, 67], [1, 3],
                           [(32, 2), (64, 3), (128, 5), (32, 6), (64, 8), (32, "mxfp4"),
                            (16, "nvfp4"), (32, "mxfp8")])),
)
def test_qmv_wide(rng, M, N, B, cfg):
    K = 128
    gs, b = cfg
    mode = b if isinstance(b, str) else "affine"
    bits = None if isinstance(b, str) else b
    x = normal(rng, (B, M, K), 1 / np.sqrt(K))
    w = normal(rng, (B, N, K), 1 / np.sqrt(K))
    check_qmm(x, w, True, gs, bits, mode)


@pytest.mark.parametrize(
    "mkn,cfg",
    list(itertools.product([(2, 32, 10), (4, 32, 7), (3, 64, 5), (5, 64, 3)],
                           [(4, 32, "affine"), (6, 32, "affine"), (4, 16, "nvfp4")])),
)
def test_qmv_tiny(rng, mkn, cfg):
    (M, K, N), (bits, gs, mode) = mkn, cfg
    x = normal(rng, (M, K))
    w = normal(rng, (N, K))
    check_qmm(x, w, True, gs, bits, mode)


# 17. test_qvm -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "gs,bits,M,N,B",
    [c for c in itertools.product([128, 64, 32], [2, 3, 4, 5, 6, 8], [32, 128, 256], [128, 256, 67],
                                  [0, 1, 3, 8]) if c[2] >= c[0]],
)
def test_qvm(rng, gs, bits, M, N, B):
    shape = (1, N) if B == 0 else (B, 1, N)
    x = normal(rng, shape, 1 / np.sqrt(N))
    w = normal(rng, (N, M) if B == 0 else (B, N, M), 1 / np.sqrt(N))
    check_qmm(x, w, False, gs, bits)


# 18.-19. test_qvm_splitk ------------------------------------------------------------------------
@pytest.mark.parametrize("gs,bits,B", list(itertools.product([128, 64, 32], [2, 4, 8], [1, 3])))
def test_qvm_splitk(rng, gs, bits, B):
    N, K = 128, 16384
    x = normal(rng, (B, 1, K), 0.1)
    w = normal(rng, (B, K, N), 0.1)
    check_qmm(x, w, False, gs, bits)


def test_qvm_splitk_vector_x(rng):
    x = normal(rng, (2048,))
    w = normal(rng, (2048, 2048))
    y, _ = check_qmm(x, w, False, 32, 8)
    assert y.shape == (2048,)


@pytest.mark.parametrize("gs,bits,K,M", list(itertools.product([64, 32], [4, 8], [2048, 4096], [2, 3])))
def test_qvm_splitk_multi_row(rng, gs, bits, K, M):
    x = normal(rng, (M, K), 0.1)
    w = normal(rng, (K, 128), 0.1)
    check_qmm(x, w, False, gs, bits)


# 20. test_fp_qvm --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode,M,N,B",
    list(itertools.product(["mxfp4", "nvfp4", "mxfp8"], [32, 128, 256], [128, 256, 67], [0, 1, 3]))
    + [(m, 128, 16384, 0) for m in ("mxfp4", "nvfp4", "mxfp8")],
)
def test_fp_qvm(rng, mode, M, N, B):
    shape = (1, N) if B == 0 else (B, 1, N)
    x = normal(rng, shape)
    w = normal(rng, (N, M) if B == 0 else (B, N, M))
    check_qmm(x, w, False, None, None, mode)


# 22. test_throw (the valid call) and 23. test_small_matrix --------------------------------------
def test_throw_valid_call(rng):
    x = normal(rng, (10, 512))
    w_q, s, b = qmm.quantize(normal(rng, (32, 512)))
    assert qmm.quantized_matmul(x, w_q, s, b).shape == (10, 32)


@pytest.mark.parametrize("w_shape", [(8, 256), (1, 8, 256), (3, 8, 256)])
def test_small_matrix(rng, w_shape):
    w = normal(rng, w_shape)
    for x_shape in [(3, 1, 256), (3, 4, 256), (3, 10, 256)]:  # qmv, qmv, qmm_t
        check_qmm(normal(rng, x_shape), w, True)
    for x_shape in [(3, 1, 8), (3, 10, 8)]:  # qvm, qmm
        wt = normal(rng, w_shape[:-2] + (8, 256))
        check_qmm(normal(rng, x_shape), wt, False)


# 24.-25. non multiples -------------------------------------------------------------------------
@pytest.mark.parametrize("N", [33, 3, 99])
def test_non_multiples(rng, N):
    w = normal(rng, (N, 256))
    for x_shape in [(1, 256), (10, 256), (129, 256)]:
        check_qmm(normal(rng, x_shape), w, True)
    wt = normal(rng, (N, 256))  # transpose=False: x (.., N) @ (N, 256)
    for x_shape in [(1, N), (10, N)]:
        check_qmm(normal(rng, x_shape), wt, False)


# 26. test_gather_qmm ------------------------------------------------------------------------------
GATHER_BATCHES = [
    ((1,), [0], (3,), [2, 1]),
    ((1,), None, (3,), [2, 1]),
    ((2,), None, (3,), [2, 1]),
    ((3,), [0, 2], (1,), [0]),
    ((5,), [0, 2], (3,), [2, 1]),
    ((4, 2), [[7, 6], [5, 4], [1, 2]], (4, 1), [[2], [0], [1]]),
]
GATHER_SHAPES = [
    (1, 32, 128, True), (32, 32, 256, True), (1, 32, 256, True), (32, 32, 512, True),
    (1, 32, 512, True), (32, 256, 32, False), (1, 256, 32, False), (32, 512, 32, False),
    (1, 512, 32, False),
]


def gather_case(rng, a_batch, lhs, b_batch, rhs, M, N, K, transpose, mode="affine", gs=None,
                bits=None, dtype=np.float32, sorted_indices=False):
    x = normal(rng, a_batch + (M, K), dtype=dtype)
    w = normal(rng, b_batch + ((N, K) if transpose else (K, N)), dtype=dtype)
    out = quantize_np(w, gs, bits, mode)
    w_q, scales, biases = out if mode == "affine" else (out[0], out[1], None)
    li = None if lhs is None else np.array(lhs, np.uint32)
    ri = None if rhs is None else np.array(rhs, np.uint32)
    y = qmm.gather_qmm(x, w_q, scales, biases, li, ri, transpose, gs, bits, mode,
                       sorted_indices=sorted_indices)
    w_hat = R.dequantize(w_q, scales, biases, gs, bits, mode)
    ref = R.gather_matmul(x, w_hat, li, ri, transpose)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    err = R.rel_err(y, ref)
    assert err <= R.TOL[R.dtype_name(y)], err
    return y, ref


@pytest.mark.parametrize("batch", GATHER_BATCHES)
@pytest.mark.parametrize("shape", GATHER_SHAPES)
def test_gather_qmm(rng, batch, shape):
    y, ref = gather_case(rng, *batch, *shape)
    assert np.abs(R.f64(y) - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("mode", ["nvfp4", "mxfp4", "mxfp8"])
@pytest.mark.parametrize("shape", GATHER_SHAPES)
def test_gather_qmm_fp(rng, mode, shape):
    gather_case(rng, (1,), [0], (3,), [2, 1], *shape, mode=mode)


# 27. test_qmm_fp_type ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["mxfp8", "mxfp4"])
@pytest.mark.parametrize("dtype", [BF16, np.float16, np.float32])
def test_qmm_fp_type(rng, mode, dtype):
    x = normal(rng, (32, 256), dtype=dtype)
    w_q, scales = qmm.quantize(normal(rng, (32, 256)), mode=mode)
    y = qmm.quantized_matmul(x, w_q, scales, mode=mode)
    assert y.dtype == R.dtype_name(x)
    w_q, scales = qmm.quantize(normal(rng, (4, 32, 256)), mode=mode)
    y = qmm.gather_qmm(x, w_q, scales, mode=mode, rhs_indices=np.array([[2], [0], [1]]))
    assert y.dtype == R.dtype_name(x) and y.shape == (3, 1, 32, 32)


# 29. test_gather_qmm_matrix_path ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["affine", "mxfp4"])
def test_gather_qmm_matrix_path(rng, mode):
    E, M, N, K = 4, 64, 512, 512
    x = normal(rng, (E, M, K), 1 / np.sqrt(K))
    w = normal(rng, (E, N, K), 1 / np.sqrt(K))
    out = quantize_np(w, mode=mode)
    w_q, scales, biases = out if mode == "affine" else (out[0], out[1], None)
    lhs, rhs = np.array([0, 1, 2]), np.array([0, 2, 3])
    y = qmm.gather_qmm(x, w_q, scales, biases, lhs, rhs, mode=mode)
    w_hat = R.dequantize(w_q, scales, biases, mode=mode)
    for i in range(3):
        ref = R.f64(x[lhs[i]]) @ w_hat[rhs[i]].T
        assert R.rel_err(np.asarray(y)[i], ref) < 1e-5


# 30. test_gather_qmm_sorted ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "L,K,D,E,I,transpose,mode",
    [(32, 512, 512, 4, 2, True, "affine"), (32, 512, 544, 4, 2, True, "mxfp4"),
     (32, 512, 544, 4, 2, True, "nvfp4"), (32, 512, 544, 4, 2, True, "mxfp8"),
     (39, 512, 512, 4, 2, True, "affine"), (133, 512, 555, 4, 2, True, "affine"),
     (64, 512, 512, 4, 2, False, "affine"), (64, 512, 544, 4, 2, False, "mxfp4"),
     (133, 512, 512, 4, 2, False, "affine")],
)
def test_gather_qmm_sorted(rng, L, K, D, E, I, transpose, mode):
    x = normal(rng, (L, 1, 1, K), 1 / np.sqrt(K))
    w = normal(rng, (E, D, K) if transpose else (E, K, D), 1 / np.sqrt(K))
    indices = rng.integers(0, E, (L, I)).astype(np.uint32)
    out = quantize_np(w, mode=mode)
    w_q, scales, biases = out if mode == "affine" else (out[0], out[1], None)
    y = qmm.gather_qmm(x, w_q, scales, biases, rhs_indices=indices, transpose=transpose,
                       mode=mode)
    # The sorted path (mlx-lm's gather_sort / scatter_unsort) gives the same result.
    flat = indices.reshape(-1)
    order = np.argsort(flat, kind="stable")
    xs = x.reshape(L, 1, K)[order // I]
    ys = qmm.gather_qmm(xs, w_q, scales, biases, rhs_indices=flat[order], transpose=transpose,
                        mode=mode, sorted_indices=True)
    ys = np.asarray(ys)[np.argsort(order)].reshape(L, I, 1, -1)
    np.testing.assert_array_equal(ys, np.asarray(y))
    # Unsorted indices flagged as sorted still give the right answer (Decision 4).
    yu = qmm.gather_qmm(x, w_q, scales, biases, rhs_indices=indices, transpose=transpose,
                        mode=mode, sorted_indices=True)
    np.testing.assert_array_equal(np.asarray(yu), np.asarray(y))
    w_hat = R.dequantize(w_q, scales, biases, mode=mode)
    ref = R.gather_matmul(x, w_hat, None, indices, transpose)
    assert R.rel_err(y, ref) < 1e-5


# 35. test_quantize_strided ----------------------------------------------------------------------
def test_quantize_strided(rng):
    w = normal(rng, (64, 64))
    w_q, scales = qmm.quantize(w, mode="nvfp4")
    s = np.broadcast_to(np.uint8(56), np.asarray(scales).shape)  # zero strides
    a = qmm.dequantize(w_q, s, mode="nvfp4")
    b = qmm.dequantize(w_q, np.ascontiguousarray(s), mode="nvfp4")
    np.testing.assert_array_equal(R.f64(a), R.f64(b))


# 36. C++ "test quantize dequantize" -------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_cpp_quantize_dequantize(bits):
    x = np.ones((128, 1), np.float32) * np.arange(512, dtype=np.float32)
    w_q, scales, biases = qmm.quantize(x, 128, bits)
    assert w_q.shape == (128, 512 * bits // 32) and scales.shape == (128, 4)
    x_hat = np.asarray(qmm.dequantize(w_q, scales, biases, 128, bits))
    assert np.abs(x - x_hat).max() <= 127 / 2**bits
