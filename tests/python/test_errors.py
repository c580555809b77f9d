"""Every error path of the Python API raises the right exception type with the core's message:
ValueError (std::invalid_argument, MLX's wording and `[op]` tag) for bad values, shapes, dtypes
and devices; TypeError for arguments of the wrong Python type (mlx-semantics 8, 9.2, 10.2, 14 #21,
#22 and Decision 3)."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import qmm

BF16 = ml_dtypes.bfloat16


def raises(exc, msg):
    return pytest.raises(exc, match=re.escape(msg))


@pytest.fixture
def w():
    return np.random.default_rng(0).standard_normal((32, 256)).astype(np.float32)


@pytest.fixture
def q(w):
    return qmm.quantize(w)


# quantize (mlx-semantics 8) -----------------------------------------------------------------
def test_quantize_errors(w):
    with raises(ValueError, "[quantize] Invalid quantization mode 'xyz'."):
        qmm.quantize(w, mode="xyz")
    with raises(ValueError, "[quantize] Only real floating types can be quantized but w has type int32."):
        qmm.quantize(w.astype(np.int32))
    with raises(ValueError, "[quantize] Only real floating types can be quantized but w has type int32."):
        qmm.quantize(w.astype(np.int32), mode="mxfp4")
    with raises(ValueError, "[quantize] The matrix to be quantized must have at least 2 dimension but it has only 1."):
        qmm.quantize(w[0])
    with raises(ValueError, "[quantize] The last dimension of the matrix needs to be divisible by the quantization group size 64. However the provided  matrix has shape (32,96)"):
        qmm.quantize(w[:, :96])
    with raises(ValueError, "[quantize] Global scale is only supported for 'nvfp4' quantization mode."):
        qmm.quantize(w, global_scale=np.float32(1))
    with raises(ValueError, "[quantize] Global scale must be a scalar but got shape (2)."):
        qmm.quantize(w, mode="nvfp4", global_scale=np.ones(2, np.float32))
    with raises(ValueError, "[quantize] Global scale must have dtype float32 but got float16."):
        qmm.quantize(w, mode="nvfp4", global_scale=np.float16(1))
    with raises(ValueError, "[quantize] The requested group size 16 is not supported. The supported group sizes are 32, 64, and 128."):
        qmm.quantize(w, 16)
    with raises(ValueError, "[quantize] The requested number of bits 7 is not supported. The supported bits are 2, 3, 4, 5, 6 and 8."):
        qmm.quantize(w, 64, 7)
    with raises(ValueError, "[quantize] mxfp4 quantization requires group size 32 but got 64."):
        qmm.quantize(w, 64, mode="mxfp4")
    for bits in (3, 7):
        with raises(ValueError, f"[quantize] mxfp8 quantization requires bits to be 8 but got {bits}."):
            qmm.quantize(w, 32, bits, mode="mxfp8")
    with pytest.raises(ValueError, match=r"\[quantize\] mxfp4 quantization requires bits"):
        qmm.quantize(w, 32, 3, mode="mxfp4")
    with pytest.raises(ValueError, match=r"\[quantize\] nvfp4"):
        qmm.quantize(w, 32, mode="nvfp4")
    with pytest.raises(ValueError, match=r"\[quantize\]"):
        qmm.quantize(w, 0)


# dequantize ---------------------------------------------------------------------------------
def test_dequantize_errors(w, q):
    w_q, s, b = q
    with raises(ValueError, "[dequantize] Invalid quantization mode 'xyz'."):
        qmm.dequantize(w_q, s, b, mode="xyz")
    with raises(ValueError, "[dequantize] Only real floating types are supported but output dtype == int32."):
        qmm.dequantize(w_q, s, b, dtype=np.int32)
    with raises(ValueError, "[dequantize] Biases must be provided for affine quantization."):
        qmm.dequantize(w_q, s)
    with raises(ValueError, "[dequantize] Only real floating types are supported but scales.dtype() == int32 and biases.dtype() == int32."):
        qmm.dequantize(w_q, np.asarray(s).astype(np.int32), np.asarray(b).astype(np.int32))
    fq, fs = qmm.quantize(w, mode="mxfp4")
    with raises(ValueError, "[dequantize] Scale type must be uint8 but received type float32."):
        qmm.dequantize(fq, s, mode="mxfp4")
    with raises(ValueError, "[dequantize] Biases must be null for quantization mode 'mxfp4'."):
        qmm.dequantize(fq, fs, b, mode="mxfp4")
    with raises(ValueError, "[dequantize] Invalid value for bits: 0"):
        qmm.dequantize(w_q, s, b, bits=0)
    with raises(ValueError, "[dequantize] Invalid value for group_size: -1"):
        qmm.dequantize(w_q, s, b, group_size=-1)
    with raises(ValueError, "[dequantize] The matrix should be given as a uint32"):
        qmm.dequantize(np.asarray(w_q).astype(np.int32), s, b)
    with raises(ValueError, "[dequantize] The matrix to be dequantized must have at least 2 dimension but it has only 1."):
        qmm.dequantize(np.asarray(w_q)[0], np.asarray(s)[0], np.asarray(b)[0])
    with raises(ValueError, "[dequantize] Shape of scales and biases does not match the matrix"):
        qmm.dequantize(w_q, np.asarray(s)[:4], np.asarray(b)[:4])
    with raises(ValueError, "[dequantize] Shape of scales and biases does not match the matrix given the quantization parameters. Provided matrix of shape (32,32) and scales/biases of shape (32,4) with group_size=32 and bits=4."):
        qmm.dequantize(w_q, s, b, group_size=32)
    with raises(ValueError, "[dequantize] Shape of scales does not match the matrix"):
        qmm.dequantize(fq, np.asarray(fs)[:3], mode="mxfp4")
    # fp modes: the (group size, bits) combination, tagged [dequantize] (MLX test #2, #3)
    with pytest.raises(ValueError, match=r"\[dequantize\] mxfp4 quantization requires group size 32"):
        qmm.dequantize(fq, fs, group_size=64, mode="mxfp4")
    with pytest.raises(ValueError, match=r"\[dequantize\] mxfp8"):
        qmm.dequantize(fq, fs, group_size=16, bits=4, mode="mxfp8")
    with pytest.raises(ValueError, match=r"\[dequantize\] mxfp4 quantization requires bits"):
        qmm.dequantize(fq, fs, bits=3, mode="mxfp4")
    # qmm: the affine combination is checked too (Decision 3)
    with pytest.raises(ValueError, match=r"\[dequantize\] The requested number of bits 7"):
        qmm.dequantize(w_q, s, b, bits=7)
    with raises(ValueError, "[dequantize] Global scale is only supported for 'nvfp4' quantization mode."):
        qmm.dequantize(fq, fs, mode="mxfp4", global_scale=np.float32(1))


# quantized_matmul (mlx-semantics 9.2, MLX tests #21, #22) -----------------------------------
def test_quantized_matmul_errors(w, q):
    w_q, s, b = q
    x = np.ones((10, 256), np.float32)
    with raises(ValueError, "[quantized_matmul] Invalid quantization mode 'xyz'."):
        qmm.quantized_matmul(x, w_q, s, b, mode="xyz")
    with raises(ValueError, "[quantized_matmul] Biases must be provided for affine quantization."):
        qmm.quantized_matmul(x, w_q, s)
    with raises(ValueError, "[quantized_matmul] Only real floating types are supported but scales.dtype() == int32 and biases.dtype() == int32."):
        qmm.quantized_matmul(x, w_q, np.asarray(s).astype(np.int32), np.asarray(b).astype(np.int32))
    fq, fs = qmm.quantize(w, mode="mxfp4")
    with raises(ValueError, "[quantized_matmul] Scale type must be uint8 but received type float32."):
        qmm.quantized_matmul(x, fq, s, mode="mxfp4")
    with raises(ValueError, "[quantized_matmul] Biases must be null for quantization mode 'mxfp4'."):
        qmm.quantized_matmul(x, fq, fs, b, mode="mxfp4")
    with raises(ValueError, "[quantized_matmul] The weight matrix should be uint32 but received int32"):
        qmm.quantized_matmul(x, np.asarray(w_q).astype(np.int32), s, b)
    with raises(ValueError, "[quantized_matmul] Scales and biases should have the same shape. Received scales with shape (32,4) and biases with (32,2)"):
        qmm.quantized_matmul(x, w_q, s, np.asarray(b)[:, :2])
    with raises(ValueError, "[quantized_matmul] Weight and scales should have the same batch shape. Received weight with shape (2,32,32), scales with (3,32,4)."):
        qmm.quantized_matmul(x, np.stack([w_q, w_q]), np.stack([s] * 3), np.stack([b] * 3))
    with raises(ValueError, "[quantized_matmul] The shapes of the weight and scales are incompatible based on bits and group_size. w.shape() == (32,32) and scales.shape() == (32,4) with group_size=32 and bits=4"):
        qmm.quantized_matmul(x, w_q, s, b, group_size=32)
    with pytest.raises(ValueError, match=r"\[quantized_matmul\] Weight and scales should have the same number of rows"):
        qmm.quantized_matmul(x, w_q, np.asarray(s)[:8], np.asarray(b)[:8])  # Decision 3
    with raises(ValueError, "[quantized_matmul] Last dimension of first input with shape (..., 512) does not match the expanded quantized matrix (256, 32) computed from shape (32,32) with group_size=64, bits=4 and transpose=true"):
        qmm.quantized_matmul(np.ones((10, 512), np.float32), w_q, s, b)
    with raises(ValueError, "[quantized_matmul] Only real floating types are supported but x.dtype() == int32."):
        qmm.quantized_matmul(x.astype(np.int32), fq, fs, mode="mxfp4")
    with pytest.raises(ValueError, match=r"\[quantized_matmul\] The requested number of bits 7"):
        qmm.quantized_matmul(x, w_q, s, b, bits=7)  # Decision 3: checked in every op
    with pytest.raises(ValueError, match=r"\[quantized_matmul\] Scales must be provided"):
        qmm.quantized_matmul(x, w_q)
    with pytest.raises(ValueError, match=r"\[quantized_matmul\] Biases were given without scales"):
        qmm.quantized_matmul(x, w, None, b)
    with pytest.raises(ValueError, match=r"\[quantized_matmul\] Shapes \(2\) and \(3\) cannot be broadcast"):
        qmm.quantized_matmul(np.ones((2, 10, 256), np.float32), np.stack([w_q] * 3),
                             np.stack([s] * 3), np.stack([b] * 3))


def test_mlx_test_throw(w):
    # MLX test_throw: transposed / mismatched operands
    x = np.random.default_rng(1).standard_normal((10, 512)).astype(np.float32)
    w_q, s, b = qmm.quantize(np.random.default_rng(2).standard_normal((32, 512)).astype(np.float32))
    wT, sT, bT = (np.ascontiguousarray(np.asarray(a).T) for a in (w_q, s, b))
    for args, kw in [((x, wT, s, b), {}), ((x, wT, sT, b), {}), ((x, w_q, s, b), {"transpose": False}),
                     ((x, w_q, sT, bT), {})]:
        with pytest.raises(ValueError, match=r"^\[quantized_matmul\] "):
            qmm.quantized_matmul(*args, **kw)


# gather_qmm (mlx-semantics 10.2) -------------------------------------------------------------
def test_gather_qmm_errors(w, q):
    w_q, s, b = q
    x = np.ones((2, 1, 256), np.float32)
    one = np.array(0, np.uint32)
    with raises(ValueError, "[gather_qmm] Invalid quantization mode 'xyz'."):
        qmm.gather_qmm(x, w_q, s, b, rhs_indices=one, mode="xyz")
    with raises(ValueError, "[gather_qmm] Biases must be provided for affine quantization."):
        qmm.gather_qmm(x, w_q, s, rhs_indices=one)
    with raises(ValueError, "[quantized_matmul] Biases must be provided for affine quantization."):
        qmm.gather_qmm(x, w_q, s)  # no indices: exactly quantized_matmul, with its tag
    with raises(ValueError, "[gather_qmm] Input must have at least two dimensions but got input with shape (256)."):
        qmm.gather_qmm(np.ones(256, np.float32), w_q, s, b, rhs_indices=one)
    with raises(ValueError, "[gather_qmm] Got indices with invalid dtype. Indices must be integral."):
        qmm.gather_qmm(x, w_q, s, b, rhs_indices=np.float32(0))
    with raises(ValueError, "[gather_qmm] The weight matrix should be uint32 but received float16"):
        qmm.gather_qmm(x, np.zeros(np.asarray(w_q).shape, np.float16), s, b, rhs_indices=one)
    ws, ss, bs = (np.stack([a] * 4) for a in (w_q, s, b))
    with pytest.raises(ValueError, match=r"\[gather_qmm\] rhs_indices contains 4 .*outside the valid range \[0, 4\)"):
        qmm.gather_qmm(x, ws, ss, bs, rhs_indices=np.array([0, 4]))
    with pytest.raises(ValueError, match=r"\[gather_qmm\] rhs_indices contains -1"):
        qmm.gather_qmm(x, ws, ss, bs, rhs_indices=np.array([0, -1]))
    with pytest.raises(ValueError, match=r"\[gather_qmm\] lhs_indices contains 2"):
        qmm.gather_qmm(x, ws, ss, bs, lhs_indices=np.array([2]), rhs_indices=np.array([0]))
    with pytest.raises(ValueError, match=r"\[gather_qmm\] .*cannot be broadcast"):
        qmm.gather_qmm(x, ws, ss, bs, lhs_indices=np.array([0, 1]), rhs_indices=np.array([0, 1, 2]))


# wrong Python types -> TypeError ------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda w, q: qmm.quantize("abc"),
        lambda w, q: qmm.quantize(object()),
        lambda w, q: qmm.quantize(None),
        lambda w, q: qmm.quantize(w, 64.0),
        lambda w, q: qmm.quantize(w, "64"),
        lambda w, q: qmm.quantize(w, True),
        lambda w, q: qmm.quantize(w, 64, 4.0),
        lambda w, q: qmm.quantize(w, mode=4),
        lambda w, q: qmm.quantize(w, mode=None),
        lambda w, q: qmm.quantize(w, device=3),
        lambda w, q: qmm.quantize(w, device="cpu", stream="cpu"),
        lambda w, q: qmm.quantize(w, global_scale="x"),
        lambda w, q: qmm.quantize(w.astype(np.bool_)),
        lambda w, q: qmm.quantize(w.astype(np.complex64)),
        lambda w, q: qmm.quantize(w.astype(np.uint64)),
        lambda w, q: qmm.quantize([[True, False]]),
        lambda w, q: qmm.quantize([["a"]]),
        lambda w, q: qmm.dequantize(*q, dtype=3.5),
        lambda w, q: qmm.dequantize(*q, dtype=object()),
        lambda w, q: qmm.dequantize(q[0], {"a": 1}, q[2]),
        lambda w, q: qmm.quantized_matmul(np.ones((2, 256), np.float32), *q, transpose="yes"),
        lambda w, q: qmm.quantized_matmul(np.ones((2, 256), np.float32), *q, transpose=1),
        lambda w, q: qmm.quantized_matmul("x", *q),
        lambda w, q: qmm.gather_qmm(np.ones((2, 256), np.float32), *q, sorted_indices=None),
        lambda w, q: qmm.gather_qmm(np.ones((2, 256), np.float32), *q, rhs_indices="0"),
        lambda w, q: qmm.asarray(object()),
        lambda w, q: qmm.array({1: 2}),
        lambda w, q: qmm.from_dlpack([1, 2]),
        lambda w, q: len(qmm.asarray(np.float32(1))),
        lambda w, q: qmm.eval(1),
        lambda w, q: qmm.save_safetensors("x.safetensors", [1, 2]),
        lambda w, q: qmm.save_safetensors("x.safetensors", {"a": w}, {"k": 1}),
        lambda w, q: qmm.synchronize(3.0),
        lambda w, q: qmm.new_stream(None),
        lambda w, q: qmm.Device(3.5),
        lambda w, q: qmm.asarray(w).astype(1.5),
        lambda w, q: qmm.quantize(w, positional_only=1),
    ],
)
def test_type_errors(w, q, call):
    with pytest.raises(TypeError):
        call(w, q)


def test_positional_only_like_mlx(w):
    with pytest.raises(TypeError):
        qmm.quantize(w=w)
    with pytest.raises(TypeError):
        qmm.quantized_matmul(x=np.ones((2, 256), np.float32), w=w)


# dtypes, devices, arrays, I/O, settings -> ValueError / OSError / RuntimeError --------------------
def test_value_errors_outside_ops(w, q, tmp_path):
    with raises(ValueError, "[device] Unknown device 'tpu'. Expected 'cpu', 'gpu' or 'gpu:N'."):
        qmm.quantize(w, device="tpu")
    with pytest.raises(ValueError, match="Unknown device"):
        qmm.Device("gpu:-1")
    with pytest.raises(ValueError):
        qmm.Dtype("float64")
    with pytest.raises(ValueError, match="Unknown dtype 'float64'"):
        qmm.dequantize(*q, dtype="float64")
    with pytest.raises(ValueError, match="Unsupported dtype"):
        qmm.dequantize(*q, dtype=np.int8)
    with pytest.raises(ValueError, match=r"\[item\]"):
        qmm.asarray(w).item()
    with raises(ValueError, "[set_num_threads] The thread count must be at least 1."):
        qmm.set_num_threads(0)
    with pytest.raises(FileNotFoundError):
        qmm.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(RuntimeError):
        qmm.load(bad)
    with pytest.raises((RuntimeError, OSError)):
        qmm.save_safetensors(tmp_path / "no" / "such" / "dir.safetensors", {"a": w})


def test_gpu_unavailable_is_a_value_error(w):
    if qmm.is_available(qmm.Device(qmm.gpu)):
        pytest.skip("a GPU backend is available here")
    assert qmm.device_count(qmm.gpu) == 0
    for dev in ["gpu", qmm.gpu, qmm.Device("gpu:0")]:
        with pytest.raises(ValueError, match="gpu"):
            qmm.quantize(w, device=dev)
    with pytest.raises(ValueError):
        qmm.new_stream(qmm.gpu)
    with pytest.raises(ValueError):
        qmm.set_default_device(qmm.Device("gpu"))
    with pytest.raises(ValueError):
        qmm.asarray(w).to(qmm.Device("gpu"))
