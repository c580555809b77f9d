"""qmm: MLX-compatible quantized matrix multiplication on CPUs and NVIDIA GPUs.

The four ops mirror ``mlx.core``'s names, arguments and defaults and read and write MLX's
storage format (packed uint32 weights, per-group scales and biases)::

    import numpy as np, qmm
    w = np.random.randn(512, 1024).astype(np.float32)
    w_q, scales, biases = qmm.quantize(w, group_size=64, bits=4)
    x = np.random.randn(8, 1024).astype(np.float32)
    y = qmm.quantized_matmul(x, w_q, scales, biases, transpose=True, group_size=64, bits=4)
    np.asarray(y)  # (8, 512) float32

Inputs may be numpy arrays (float32, float16, ``ml_dtypes.bfloat16``, uint8, uint32, int32,
int64; float64 is converted to float32), ``qmm.array`` objects or any DLPack producer
(``torch.Tensor`` on the CPU or a CUDA GPU, bfloat16 included); numpy arrays and DLPack tensors
are used in place, without copying, so do not modify them until the result has been read.
Results are ``qmm.array`` objects: ``np.asarray(a)`` and ``torch.from_dlpack(a)`` view them
without copying. Ops return at once; reading a result waits for it.

``device=`` (or MLX's ``stream=``) chooses where an op runs: ``"cpu"``, ``"gpu"``, ``"gpu:N"``,
``qmm.cpu``/``qmm.gpu``, a ``qmm.Device`` or a ``qmm.Stream``; None means the default device.
Invalid arguments raise ValueError with the message MLX gives (``[op] ...``); arguments of the
wrong Python type raise TypeError.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os
from typing import Any, Dict, Optional, Tuple, Union

from . import _qmm
from ._convert import (
    as_array as _as_array,
    as_bool as _as_bool,
    as_str as _as_str,
    dtype_name as _dtype_name,
    opt_array as _opt_array,
    opt_int as _opt_int,
    where as _where,
)
from ._qmm import (
    Device,
    DeviceType,
    Dtype,
    Stream,
    array,
    bfloat16,
    cpu,
    default_device,
    default_stream,
    device_count,
    float16,
    float32,
    gpu,
    int32,
    int64,
    is_available,
    num_threads,
    set_default_device,
    set_num_threads,
    uint8,
    uint32,
)

__version__: str = _qmm.__version__

__all__ = [
    "Device", "DeviceType", "Dtype", "Stream", "array", "asarray", "from_dlpack",
    "bfloat16", "float16", "float32", "int32", "int64", "uint8", "uint32", "cpu", "gpu",
    "default_device", "set_default_device", "default_stream", "new_stream", "synchronize",
    "eval", "is_available", "device_count", "num_threads", "set_num_threads",
    "quantize", "dequantize", "quantized_matmul", "gather_qmm",
    "load", "save_safetensors", "__version__",
]

ArrayLike = Any
"""A qmm.array, a numpy array, a DLPack tensor (torch.Tensor, ...) or nested lists of numbers."""
DeviceLike = Union[None, str, DeviceType, Device, Stream]
"""None (the default device), "cpu", "gpu", "gpu:N", qmm.cpu/qmm.gpu, a Device or a Stream."""


def asarray(a: ArrayLike) -> array:
    """``a`` as a qmm.array without copying where possible (numpy arrays and DLPack tensors share
    their memory; float64 is converted to float32, Python numbers and lists are converted)."""
    return _as_array(a, "asarray", "a")


def from_dlpack(x: Any) -> array:
    """A qmm.array sharing the memory of a DLPack producer (e.g. a CPU or CUDA torch.Tensor)."""
    if not hasattr(x, "__dlpack__"):
        raise TypeError(
            f"[from_dlpack] x must implement __dlpack__, but got {type(x).__name__}."
        )
    return _as_array(x, "from_dlpack", "x")


# Streams made through the package, finished at exit so that no queued work outlives Python.
_streams: list = []


def new_stream(device: Union[Device, DeviceType, str]) -> Stream:
    """A new stream on ``device``: work on one stream runs in order, work on different streams
    may overlap."""
    d, _ = _where(device, None, "new_stream")
    if d is None:
        raise TypeError("[new_stream] device must not be None.")
    s = _qmm.new_stream(d)
    _streams.append(s)
    return s


def synchronize(stream: Optional[Union[Stream, Device, DeviceType, str]] = None) -> None:
    """Waits for all work queued on ``stream`` (a Stream, or a device's default stream; None: the
    default stream of the default device) and raises the first error that work raised."""
    d, s = _where(None, stream, "synchronize")
    if s is None and d is not None:
        s = _qmm.default_stream(d)
    _qmm._synchronize(s)


def eval(*arrays: array) -> None:
    """Waits until the given qmm arrays (or tuples/lists of them) have been computed."""
    flat = []
    stack = list(arrays)
    while stack:
        a = stack.pop()
        if isinstance(a, (list, tuple)):
            stack.extend(a)
        elif isinstance(a, array):
            flat.append(a)
        else:
            raise TypeError(f"[eval] Expected qmm arrays, but got {type(a).__name__}.")
    _qmm._wait_all(flat)


def quantize(
    w: ArrayLike,
    /,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    *,
    global_scale: Optional[ArrayLike] = None,
    device: DeviceLike = None,
    stream: DeviceLike = None,
) -> Union[Tuple[array, array, array], Tuple[array, array]]:
    """Quantizes ``w`` along its last axis in groups, as ``mlx.core.quantize``.

    Args:
        w: floating-point array with at least 2 dimensions; its last axis is divisible by
            ``group_size``.
        group_size: elements sharing one scale (and bias). None: the mode's default (affine 64,
            mxfp4/mxfp8 32, nvfp4 16). Affine allows 32, 64, 128; fp modes only their default.
        bits: bits per element. None: the mode's default (affine 4, mxfp4 4, mxfp8 8, nvfp4 4).
            Affine allows 2, 3, 4, 5, 6, 8.
        mode: "affine", "mxfp4", "mxfp8" or "nvfp4".
        global_scale: nvfp4 only: a float32 scalar dividing the per-group scales.
        device: where to run ("cpu", "gpu", a Device or a Stream; None: default device).
        stream: MLX's name for ``device``.

    Returns:
        ``(w_q, scales, biases)`` for affine mode, ``(w_q, scales)`` for the fp modes. ``w_q`` is
        uint32 with shape ``w.shape[:-1] + (w.shape[-1] * bits // 32,)``; scales (and biases)
        have shape ``w.shape[:-1] + (w.shape[-1] // group_size,)``, of w's dtype for affine mode
        and uint8 (E8M0 or E4M3 codes) for the fp modes.
    """
    op = "quantize"
    d, s = _where(device, stream, op)
    return _qmm._quantize(
        _as_array(w, op, "w"),
        _opt_int(group_size, op, "group_size"),
        _opt_int(bits, op, "bits"),
        _as_str(mode, op, "mode"),
        _opt_array(global_scale, op, "global_scale"),
        d,
        s,
    )


def dequantize(
    w: ArrayLike,
    /,
    scales: ArrayLike,
    biases: Optional[ArrayLike] = None,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    global_scale: Optional[ArrayLike] = None,
    dtype: Any = None,
    *,
    device: DeviceLike = None,
    stream: DeviceLike = None,
) -> array:
    """Expands quantized weights back to floating point, as ``mlx.core.dequantize``.

    Args:
        w: packed uint32 weights from :func:`quantize` (or an MLX checkpoint).
        scales: per-group scales (floating point for affine, uint8 codes for fp modes).
        biases: per-group biases; required for affine mode, must be None for the fp modes.
        group_size, bits, mode: as given to :func:`quantize` (None: the mode's defaults).
        global_scale: nvfp4 only: the float32 scalar given to :func:`quantize`.
        dtype: output dtype (qmm.Dtype, name or numpy dtype). None: the scales' dtype for
            affine mode, bfloat16 for the fp modes.
        device: where to run; stream: MLX's name for it.

    Returns:
        An array of shape ``w.shape[:-1] + (w.shape[-1] * 32 // bits,)``.
    """
    op = "dequantize"
    d, s = _where(device, stream, op)
    return _qmm._dequantize(
        _as_array(w, op, "w"),
        _as_array(scales, op, "scales"),
        _opt_array(biases, op, "biases"),
        _opt_int(group_size, op, "group_size"),
        _opt_int(bits, op, "bits"),
        _as_str(mode, op, "mode"),
        _opt_array(global_scale, op, "global_scale"),
        None if dtype is None else _dtype_name(dtype, op),
        d,
        s,
    )


def quantized_matmul(
    x: ArrayLike,
    w: ArrayLike,
    /,
    scales: Optional[ArrayLike] = None,
    biases: Optional[ArrayLike] = None,
    transpose: bool = True,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    *,
    device: DeviceLike = None,
    stream: DeviceLike = None,
) -> array:
    """Multiplies ``x`` by quantized weights, as ``mlx.core.quantized_matmul``:
    ``x @ dequantize(w).T`` (transpose=True) or ``x @ dequantize(w)``, accumulated in float32.

    Args:
        x: activations ``(..., K)`` (or ``(K,)``), floating point.
        w: packed uint32 weights: ``(..., N, K * bits / 32)`` when transpose is True,
            ``(..., K, N * bits / 32)`` otherwise. A floating-point ``w`` with ``scales=None``
            is quantized first with the given group_size, bits and mode.
        scales, biases: per-group scales and biases (biases for affine mode only).
        transpose: whether ``w`` holds the weight matrix transposed (rows = outputs).
        group_size, bits, mode: the quantization parameters (None: the mode's defaults).
        device: where to run; stream: MLX's name for it.

    Returns:
        ``(..., N)``; dtype: for affine mode the promotion of x's and the scales' dtypes, for fp
        modes x's dtype. When both x and w have batch axes they broadcast like matmul.
    """
    op = "quantized_matmul"
    d, s = _where(device, stream, op)
    return _qmm._quantized_matmul(
        _as_array(x, op, "x"),
        _as_array(w, op, "w"),
        _opt_array(scales, op, "scales"),
        _opt_array(biases, op, "biases"),
        _as_bool(transpose, op, "transpose"),
        _opt_int(group_size, op, "group_size"),
        _opt_int(bits, op, "bits"),
        _as_str(mode, op, "mode"),
        d,
        s,
    )


def gather_qmm(
    x: ArrayLike,
    w: ArrayLike,
    /,
    scales: Optional[ArrayLike] = None,
    biases: Optional[ArrayLike] = None,
    lhs_indices: Optional[ArrayLike] = None,
    rhs_indices: Optional[ArrayLike] = None,
    transpose: bool = True,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    *,
    sorted_indices: bool = False,
    device: DeviceLike = None,
    stream: DeviceLike = None,
) -> array:
    """Quantized matmul with gathered batches (Mixture-of-Experts), as ``mlx.core.gather_qmm``:
    ``out[i] = x[lhs_indices[i]] @ dequantize(w[rhs_indices[i]]).T``.

    Args:
        x: ``(..., M, K)`` activations; its batch axes are indexed by ``lhs_indices``.
        w: packed weights ``(..., N, K * bits / 32)`` (transpose=True) or
            ``(..., K, N * bits / 32)``; its batch axes (e.g. experts) are indexed by
            ``rhs_indices``. A floating-point ``w`` with ``scales=None`` is quantized first.
        scales, biases: per-group scales and biases, batched like ``w``.
        lhs_indices, rhs_indices: integer arrays of flat batch indices into x and w (0-based,
            within range, else ValueError); broadcast against each other. None: all batches in
            order. With both None this is :func:`quantized_matmul`.
        transpose, group_size, bits, mode: as in :func:`quantized_matmul`.
        sorted_indices: a hint that ``rhs_indices`` is sorted ascending; may make the call
            faster, never changes its result.
        device: where to run; stream: MLX's name for it.

    Returns:
        ``broadcast(lhs_indices, rhs_indices).shape + (M, N)``.
    """
    op = "gather_qmm"
    d, s = _where(device, stream, op)
    return _qmm._gather_qmm(
        _as_array(x, op, "x"),
        _as_array(w, op, "w"),
        _opt_array(scales, op, "scales"),
        _opt_array(biases, op, "biases"),
        _opt_array(lhs_indices, op, "lhs_indices"),
        _opt_array(rhs_indices, op, "rhs_indices"),
        _as_bool(transpose, op, "transpose"),
        _opt_int(group_size, op, "group_size"),
        _opt_int(bits, op, "bits"),
        _as_str(mode, op, "mode"),
        _as_bool(sorted_indices, op, "sorted_indices"),
        d,
        s,
    )


def load(
    path: Union[str, "_os.PathLike[str]"], return_metadata: bool = False
) -> Union[Dict[str, array], Tuple[Dict[str, array], Dict[str, str]]]:
    """Loads every tensor of a ``.safetensors`` file (e.g. an MLX checkpoint shard) onto the CPU.

    Returns ``{name: array}``, or ``({name: array}, metadata)`` when ``return_metadata``.
    FileNotFoundError when the file does not exist, RuntimeError for malformed files.
    """
    p = _os.fspath(path)
    if not _os.path.isfile(p):
        raise FileNotFoundError(f"[load] No such file: '{p}'.")
    tensors, metadata = _qmm._load_safetensors(p)
    return (tensors, metadata) if _as_bool(return_metadata, "load", "return_metadata") else tensors


def save_safetensors(
    path: Union[str, "_os.PathLike[str]"],
    arrays: Dict[str, ArrayLike],
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes ``arrays`` (names to array-likes) and string ``metadata`` to a ``.safetensors``
    file that MLX (``mx.load``) and qmm read."""
    op = "save_safetensors"
    if not isinstance(arrays, dict):
        raise TypeError(f"[{op}] arrays must be a dict of name -> array.")
    tensors = {}
    for k, v in arrays.items():
        tensors[_as_str(k, op, "array name")] = _as_array(v, op, f"arrays['{k}']")
    md = {}
    for k, v in (metadata or {}).items():
        md[_as_str(k, op, "metadata key")] = _as_str(v, op, f"metadata['{k}']")
    _qmm._save_safetensors(_os.fspath(path), tensors, md)


def _finish_queued_work() -> None:
    # Work still queued at exit may hold Python objects (zero-copy inputs): finish it while the
    # interpreter can still release them, then stop releasing Python objects from C++.
    streams = [_qmm.default_stream(Device(cpu))]
    if _qmm.is_available(Device(gpu)):
        streams.append(_qmm.default_stream(Device(gpu)))
    for s in streams + _streams:
        try:
            _qmm._synchronize(s)
        except Exception:
            pass
    _qmm._shutdown()


_atexit.register(_finish_queued_work)
