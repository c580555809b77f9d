"""qmm.array and the exchange with numpy, ml_dtypes, DLPack and PyTorch; devices, streams,
threads, I/O and the package's metadata."""

from __future__ import annotations

import gc
import os
import re
import threading

import ml_dtypes
import numpy as np
import pytest

import qmm
import qmm_ref as R

BF16 = ml_dtypes.bfloat16
ALL_DTYPES = [np.float32, np.float16, BF16, np.uint8, np.uint32, np.int32, np.int64]


def sample(rng, dtype, shape=(3, 4)):
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 200, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# numpy <-> qmm ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_numpy_round_trip_zero_copy(rng, dtype):
    a = sample(rng, dtype)
    q = qmm.asarray(a)
    assert q.shape == a.shape and q.dtype == R.dtype_name(a) and q.device == qmm.cpu
    assert q.ndim == 2 and q.size == 12 and q.itemsize == a.itemsize and q.nbytes == a.nbytes
    b = np.asarray(q)
    assert b.dtype == a.dtype
    np.testing.assert_array_equal(b.view(np.uint8), a.view(np.uint8))
    assert np.shares_memory(a, b)  # numpy -> qmm -> numpy without a copy
    a[0, 0] = a[1, 1]
    assert np.asarray(q)[0, 0] == a[1, 1]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_array_constructor_copies(rng, dtype):
    a = sample(rng, dtype)
    q = qmm.array(a)
    assert not np.shares_memory(a, np.asarray(q))
    np.testing.assert_array_equal(np.asarray(q), a)
    assert qmm.array(q).dtype == q.dtype


def test_bfloat16_bits_survive(rng):
    bits = rng.integers(0, 2**16, 4096).astype(np.uint16)
    a = bits.view(BF16)
    out = np.asarray(qmm.asarray(a))
    assert out.dtype == BF16
    np.testing.assert_array_equal(out.view(np.uint16), bits)  # NaNs and infs included


def test_results_are_numpy_views(rng):
    y = qmm.dequantize(*qmm.quantize(sample(rng, np.float32, (8, 64))))
    a, b = np.asarray(y), np.asarray(y)
    assert np.shares_memory(a, b)
    assert y.numpy().shape == (8, 64)
    assert np.asarray(y, dtype=np.float64).dtype == np.float64
    c = np.array(y, copy=True)
    assert not np.shares_memory(a, c)


def test_conversions_like_mlx():
    assert qmm.asarray(np.zeros(3)).dtype == qmm.float32  # float64 -> float32, as mx.array
    assert qmm.asarray([1.5, 2.0]).dtype == qmm.float32
    assert qmm.asarray([1, 2]).dtype == qmm.int32
    assert qmm.asarray([2**40]).dtype == qmm.int64
    assert qmm.asarray(3.0).shape == ()
    assert qmm.asarray(np.int16([1, -2])).dtype == qmm.int32
    assert qmm.array([[1, 2], [3, 4]], dtype=np.float16).dtype == qmm.float16
    assert qmm.array([1, 2], dtype="bfloat16").dtype == qmm.bfloat16
    np.testing.assert_array_equal(np.asarray(qmm.asarray(np.arange(6.0).reshape(2, 3))),
                                  np.arange(6.0, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("view", ["slice", "transpose", "negative", "broadcast", "readonly"])
def test_strided_inputs_give_the_same_result(rng, view):
    x = rng.standard_normal((128, 16)).astype(np.float32)
    w = rng.standard_normal((64, 128)).astype(np.float32)
    w_q, s, b = qmm.quantize(w)
    want = np.asarray(qmm.quantized_matmul(np.ascontiguousarray(x.T), w_q, s, b))
    if view == "slice":
        big = np.zeros((32, 256), np.float32)
        big[::2, ::2] = x.T
        xv = big[::2, ::2]
    elif view == "transpose":
        xv = x.T
    elif view == "negative":
        xv = np.ascontiguousarray(x.T[::-1])[::-1]
    elif view == "broadcast":
        xv = np.broadcast_to(x.T[:1], (16, 128))
        want = np.asarray(qmm.quantized_matmul(np.ascontiguousarray(xv), w_q, s, b))
    else:
        xv = x.T.copy()
        xv.flags.writeable = False
    assert not xv.flags.c_contiguous or view == "readonly"
    np.testing.assert_array_equal(np.asarray(qmm.quantized_matmul(xv, w_q, s, b)), want)
    qv = qmm.asarray(xv)
    np.testing.assert_array_equal(np.asarray(qv), xv)


def test_inputs_outlive_their_python_names(rng):
    w = rng.standard_normal((256, 512)).astype(np.float32)
    x = rng.standard_normal((64, 512)).astype(np.float32)
    ref_q = [np.asarray(a).copy() for a in qmm.quantize(w)]
    outs = []
    for _ in range(8):  # the only references to the inputs are the queued ops
        outs.append(qmm.quantized_matmul(x.copy(), *[a.copy() for a in ref_q]))
    del x
    gc.collect()
    first = np.asarray(outs[0])
    for o in outs[1:]:
        np.testing.assert_array_equal(np.asarray(o), first)


# DLPack ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if d is not BF16])
def test_dlpack_with_numpy(rng, dtype):
    a = sample(rng, dtype)
    q = qmm.from_dlpack(a)
    assert q.__dlpack_device__() == (1, 0)
    b = np.from_dlpack(q)
    np.testing.assert_array_equal(b, a)
    assert np.shares_memory(a, b)
    c = np.from_dlpack(q, copy=True)
    assert not np.shares_memory(a, c)
    capsule = q.__dlpack__(max_version=(1, 0))
    assert "dltensor" in repr(capsule)


def test_dlpack_of_results_waits(rng):
    w = rng.standard_normal((512, 512)).astype(np.float32)
    y = qmm.dequantize(*qmm.quantize(w))
    np.testing.assert_array_equal(np.from_dlpack(y), np.asarray(y))


# PyTorch (skipped where torch is not installed) ---------------------------------------------
TORCH_DTYPES = ["float32", "float16", "bfloat16", "uint8", "int32", "int64"]


@pytest.mark.parametrize("name", TORCH_DTYPES)
def test_torch_round_trip_zero_copy(torch, name):
    dt = getattr(torch, name)
    t = (torch.arange(24) % 7).to(dt).reshape(4, 6)
    q = qmm.from_dlpack(t)
    assert q.dtype == name and q.shape == (4, 6)
    back = torch.from_dlpack(q)
    assert back.dtype == dt and back.data_ptr() == t.data_ptr()
    assert torch.equal(back, t)
    if name == "bfloat16":
        np.testing.assert_array_equal(np.asarray(q).view(np.uint16),
                                      t.view(torch.int16).numpy().view(np.uint16))


def test_torch_tensors_into_ops(torch, rng):
    w = torch.randn(64, 256, dtype=torch.bfloat16)
    x = torch.randn(5, 256, dtype=torch.bfloat16)
    w_q, s, b = qmm.quantize(w)
    y = torch.from_dlpack(qmm.quantized_matmul(x, w_q, s, b))
    assert y.dtype == torch.bfloat16 and y.shape == (5, 64)
    ref = R.matmul(x.float().numpy(), R.dequantize(w_q, s, b))
    assert R.rel_err(y.float().numpy(), ref) < R.TOL["bfloat16"]
    # strided torch views
    y2 = qmm.quantized_matmul(x.t().contiguous().t(), w_q, s, b)
    np.testing.assert_array_equal(np.asarray(y2).view(np.uint16),
                                  np.asarray(qmm.asarray(y)).view(np.uint16))


def test_torch_cuda_tensors(torch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    t = torch.randn(64, 256, device="cuda")
    if not qmm.is_available(qmm.Device(qmm.gpu)):
        with pytest.raises(ValueError, match="CUDA"):
            qmm.quantize(t)
        return
    dev = qmm.Device(qmm.gpu, t.device.index or 0)
    w_q, s, b = qmm.quantize(t, device=dev)  # ops run on the default device unless told
    assert w_q.device == dev and w_q.__dlpack_device__() == (2, dev.index)
    back = torch.from_dlpack(w_q)
    assert back.is_cuda
    ref = qmm.quantize(t.cpu())
    np.testing.assert_array_equal(back.cpu().numpy().view(np.uint32), np.asarray(ref[0]))
    x = torch.randn(8, 256, device="cuda")
    y = torch.from_dlpack(qmm.quantized_matmul(x, w_q, s, b, device=dev))
    assert y.is_cuda and y.dtype == torch.float32
    yc = np.asarray(qmm.quantized_matmul(x.cpu(), *ref))
    assert R.rel_err(y.cpu().numpy(), yc) < R.TOL["float32"]


# array API -------------------------------------------------------------------------------
def test_array_properties_and_repr(rng):
    a = qmm.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert a.shape == (2, 3) and isinstance(a.shape, tuple)
    assert a.dtype == qmm.float32 and a.dtype == "float32" and a.dtype != qmm.float16
    assert repr(a.dtype) == "qmm.float32" and str(a.dtype) == "float32" and a.dtype.size == 4
    assert a.device == qmm.Device(qmm.cpu) and a.device == "cpu" and a.device == qmm.cpu
    assert repr(a.device) == "Device(cpu, 0)"
    assert a.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert re.match(r"array\(\[\[0, 1, 2\],\s*\[3, 4, 5\]\], dtype=float32\)", repr(a))
    assert len(a) == 2 and a.strides == [3, 1]
    assert a.T.shape == (3, 2) and a.T.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    assert a.reshape([3, 2]).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert a.swapaxes(0, 1).shape == (3, 2)
    assert a.astype(qmm.float16).dtype == qmm.float16
    assert a.astype(np.int32).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert a.to(qmm.Device("cpu")).tolist() == a.tolist()
    b = qmm.asarray(np.array([1.5], BF16))
    assert b.tolist() == [1.5] and isinstance(b.tolist()[0], float)
    assert b.item() == 1.5
    assert qmm.asarray(np.int64(7)).item() == 7
    assert qmm.Dtype("uint8") == qmm.uint8 and hash(qmm.Dtype("uint8")) == hash(qmm.uint8)
    assert {qmm.float32: 1}[qmm.Dtype("float32")] == 1


def test_quantize_returns_like_mlx(rng):
    w = sample(rng, np.float32, (4, 64))
    assert len(qmm.quantize(w)) == 3
    for mode in ["mxfp4", "mxfp8", "nvfp4"]:
        assert len(qmm.quantize(w, mode=mode)) == 2
    w_q, s, b = qmm.quantize(w.astype(BF16), 32, 8)
    assert w_q.dtype == qmm.uint32 and s.dtype == qmm.bfloat16 and b.dtype == qmm.bfloat16
    assert w_q.shape == (4, 16) and s.shape == (4, 2)
    # keyword names and defaults as mlx.core
    y = qmm.dequantize(w_q, scales=s, biases=b, group_size=32, bits=8, mode="affine",
                       global_scale=None, dtype=None)
    assert y.dtype == qmm.bfloat16


def test_automatic_quantization(rng):
    w = sample(rng, np.float32, (32, 128))
    x = sample(rng, np.float32, (3, 128))
    y = qmm.quantized_matmul(x, w, group_size=32, bits=8)
    y2 = qmm.quantized_matmul(x, *qmm.quantize(w, 32, 8), group_size=32, bits=8)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y2))
    g = qmm.gather_qmm(x, w[None], rhs_indices=np.array([0]), mode="mxfp8")
    assert g.shape == (1, 3, 32)


# devices, streams, threads -------------------------------------------------------------------
def test_devices_and_streams(rng):
    assert qmm.default_device() == qmm.Device(qmm.cpu, 0)
    assert qmm.is_available(qmm.Device("cpu")) and qmm.device_count(qmm.cpu) == 1
    assert str(qmm.Device("gpu:1")) == "gpu:1" and qmm.Device("gpu").index == 0
    s = qmm.new_stream(qmm.cpu)
    assert s.device == qmm.cpu and s.index > 0 and s != qmm.default_stream(qmm.Device("cpu"))
    assert "Stream(Device(cpu, 0)" in repr(s)
    w = sample(rng, np.float32, (64, 256))
    x = sample(rng, np.float32, (5, 256))
    want = np.asarray(qmm.quantized_matmul(x, *qmm.quantize(w)))
    for dev in ["cpu", qmm.cpu, qmm.Device(qmm.cpu), s, qmm.default_stream(qmm.Device("cpu"))]:
        q = qmm.quantize(w, device=dev)
        y = qmm.quantized_matmul(x, *q, device=dev)
        np.testing.assert_array_equal(np.asarray(y), want)
    y = qmm.quantized_matmul(x, *qmm.quantize(w, stream=s), stream=s)  # MLX's keyword
    qmm.synchronize(s)
    qmm.synchronize()
    qmm.synchronize(qmm.cpu)
    qmm.eval(y, [y, (y,)])
    np.testing.assert_array_equal(np.asarray(y), want)


def test_threads(rng):
    """Ops from several Python threads at once; the GIL is released while they run and wait."""
    w = sample(rng, np.float32, (256, 1024))
    x = sample(rng, np.float32, (32, 1024))
    q = qmm.quantize(w)
    want = np.asarray(qmm.quantized_matmul(x, *q))
    errors = []

    def work(i):
        try:
            s = qmm.new_stream(qmm.cpu) if i % 2 else None
            for _ in range(10):
                y = qmm.quantized_matmul(x, *q, device=s)
                np.testing.assert_array_equal(np.asarray(y), want)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_gil_released_while_computing(rng):
    """A Python thread keeps running while the main thread waits for a long op."""
    w = sample(rng, np.float32, (4096, 4096))
    x = sample(rng, np.float32, (64, 4096))
    q = qmm.quantize(w)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    before = len(ticks)
    for _ in range(3):
        np.asarray(qmm.quantized_matmul(x, *q))
    stop.set()
    t.join()
    assert len(ticks) > before


def test_num_threads():
    n = qmm.num_threads()
    assert n >= 1
    qmm.set_num_threads(1)
    assert qmm.num_threads() == 1
    qmm.set_num_threads(n)


# safetensors ---------------------------------------------------------------------------------
def test_safetensors_round_trip(rng, tmp_path):
    arrays = {d if isinstance(d, str) else np.dtype(d).name: sample(rng, d) for d in ALL_DTYPES}
    p = tmp_path / "t.safetensors"
    qmm.save_safetensors(p, arrays, {"format": "mlx"})
    t = qmm.load(p)
    t2, meta = qmm.load(str(p), return_metadata=True)
    assert meta == {"format": "mlx"} and set(t) == set(arrays) == set(t2)
    for k, a in arrays.items():
        b = np.asarray(t[k])
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(b.view(np.uint8), a.view(np.uint8))


def test_mlx_fixture_loads():
    d = os.path.join(os.path.dirname(__file__), "..", "fixtures", "mlx")
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors")) if os.path.isdir(d) else []
    if not files:
        pytest.skip("no MLX fixtures in tests/fixtures/mlx")
    t = qmm.load(os.path.join(d, files[0]))
    assert t and all(isinstance(v, qmm.array) for v in t.values())


# package metadata ------------------------------------------------------------------------------
def test_version_matches_pyproject():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    text = open(os.path.join(root, "pyproject.toml")).read()
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    assert m and m.group(1) == qmm.__version__
    h = open(os.path.join(root, "include", "qmm", "version.h")).read()
    parts = [re.search(rf"QMM_VERSION_{k}\s+(\d+)", h).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    assert ".".join(parts) == qmm.__version__


def test_public_functions_are_documented():
    for name in ["quantize", "dequantize", "quantized_matmul", "gather_qmm", "asarray",
                 "from_dlpack", "load", "save_safetensors", "synchronize", "new_stream"]:
        doc = getattr(qmm, name).__doc__
        assert doc and len(doc) > 40, name
    for name in ["quantize", "dequantize", "quantized_matmul", "gather_qmm"]:
        doc = getattr(qmm, name).__doc__
        assert "Args:" in doc and "Returns:" in doc and "group_size" in doc
    pyi = os.path.join(os.path.dirname(qmm.__file__), "_qmm.pyi")
    assert os.path.exists(pyi) or os.path.exists(
        os.path.join(os.path.dirname(__file__), "..", "..", "python", "qmm", "_qmm.pyi"))


def test_stub_is_current(tmp_path):
    """python/qmm/_qmm.pyi matches what nanobind's stubgen makes of the built module."""
    try:
        from nanobind import stubgen
    except ImportError:
        pytest.skip("nanobind is not installed")
    committed = os.path.join(os.path.dirname(__file__), "..", "..", "python", "qmm", "_qmm.pyi")
    out = tmp_path / "_qmm.pyi"
    stubgen.main(["-q", "-m", "qmm._qmm", "-o", str(out)])
    assert out.read_text() == open(committed).read(), (
        "regenerate: python -m nanobind.stubgen -m qmm._qmm -o python/qmm/_qmm.pyi")
