"""Argument conversion for the qmm package: array-likes, dtypes, devices and integer options.

Everything a user passes goes through here before it reaches the compiled module, so wrong
Python types raise TypeError with a message naming the op and the argument, and array inputs
are wrapped without copying wherever the memory can be shared.
"""

from __future__ import annotations

import operator
from typing import Any, Optional, Tuple

import numpy as np

from . import _qmm

try:  # ml_dtypes provides numpy's bfloat16; qmm depends on it, but stay importable without it
    import ml_dtypes as _ml_dtypes

    _BF16 = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a declared dependency
    _ml_dtypes = None
    _BF16 = None

# numpy dtypes a qmm array holds as they are (zero copy).
_NATIVE = {np.dtype(t) for t in (np.float32, np.float16, np.uint8, np.uint32, np.int32, np.int64)}
# numpy dtypes widened losslessly to int32 (a copy); handy for index arrays.
_WIDEN_TO_INT32 = {np.dtype(t) for t in (np.int8, np.int16, np.uint16)}

_DTYPE_NAMES = ("float32", "float16", "bfloat16", "uint8", "uint32", "int32", "int64")


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def _supported_msg() -> str:
    return (
        "qmm arrays hold float32, float16, bfloat16 (ml_dtypes.bfloat16), uint8, uint32, int32 "
        "or int64; float64 is converted to float32 and int8/int16/uint16 to int32"
    )


def _from_numpy(a: np.ndarray, copy: bool, op: str, name: str) -> "_qmm.array":
    dt = a.dtype
    if _BF16 is not None and dt == _BF16:
        return _qmm._import(a.view(np.uint16), "bfloat16", copy)
    if dt in _NATIVE or dt == np.float64:  # float64: converted to float32 in C++ (a copy)
        return _qmm._import(a, None, copy)
    if dt in _WIDEN_TO_INT32:
        return _qmm._import(a.astype(np.int32), None, False)
    raise TypeError(f"[{op}] {name} has unsupported dtype {dt}: {_supported_msg()}.")


def _from_python(x: Any, op: str, name: str) -> "_qmm.array":
    """Python scalars and (nested) lists, with mlx.core.array's rules: floats become float32,
    ints int32 (int64 when they do not fit)."""
    a = np.asarray(x)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(
            f"[{op}] {name} must be an array or numbers, but got {_type_name(x)} "
            f"(numpy sees dtype {a.dtype}): {_supported_msg()}."
        )
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu" and not isinstance(x, np.generic):
        info = np.iinfo(np.int32)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            a = a.astype(np.int32)
        else:
            a = a.astype(np.int64)
    return _from_numpy(a, False, op, name)


def as_array(x: Any, op: str = "array", name: str = "input", copy: bool = False) -> "_qmm.array":
    """`x` as a qmm.array: qmm arrays as they are, numpy arrays and DLPack tensors (PyTorch, JAX,
    CuPy, ...) without copying (unless `copy`), Python numbers and lists converted."""
    if isinstance(x, _qmm.array):
        return _import_copy(x) if copy else x
    if isinstance(x, np.ndarray):
        return _from_numpy(x, copy, op, name)
    if isinstance(x, np.generic):
        return _from_numpy(np.asarray(x), copy, op, name)
    if hasattr(x, "__dlpack__"):
        return _from_dlpack(x, copy, op, name)
    if isinstance(x, (bool,)):
        raise TypeError(f"[{op}] {name} must be an array, but got a bool.")
    if isinstance(x, (int, float, list, tuple)):
        return _from_python(x, op, name)
    raise TypeError(
        f"[{op}] {name} must be an array (qmm.array, numpy array, DLPack tensor such as a "
        f"torch.Tensor, or nested lists of numbers), but got {_type_name(x)}."
    )


def _from_dlpack(x: Any, copy: bool, op: str, name: str) -> "_qmm.array":
    dev = None
    if hasattr(x, "__dlpack_device__"):
        dev = tuple(int(v) for v in x.__dlpack_device__())
    if dev is not None and dev[0] in (2, 13):  # kDLCUDA, kDLCUDAManaged
        _sync_torch_cuda(x, dev[1])
    try:
        return _qmm._import(x, None, copy)
    except TypeError as e:
        if "incompatible function arguments" not in str(e):
            raise
    # nanobind could not import it (e.g. a dtype DLPack cannot describe): try numpy's view.
    if dev is None or dev[0] == 1:
        try:
            a = np.from_dlpack(x)
        except Exception:
            a = None
        if a is not None:
            return _from_numpy(a, copy, op, name)
    raise TypeError(f"[{op}] {name} ({_type_name(x)}) could not be imported through DLPack.")


def _sync_torch_cuda(x: Any, index: int) -> None:
    """A CUDA tensor from PyTorch may still be being written on PyTorch's current stream, which
    qmm's streams do not wait for: finish that stream first."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch  # already imported, since x is a tensor

        torch.cuda.current_stream(index).synchronize()


def array_copy(x: Any, dtype: Any = None) -> "_qmm.array":
    """qmm.array(x, dtype): a new array holding a copy of x, converted to dtype if given."""
    a = as_array(x, "array", "obj", copy=True)
    if dtype is not None:
        name = dtype_name(dtype, "array")
        if a.dtype != name:
            a = a.astype(name)
    return a


def dtype_name(dtype: Any, op: str) -> str:
    """The qmm dtype name for a qmm.Dtype, a name, or anything numpy understands as a dtype."""
    if isinstance(dtype, _qmm.Dtype):
        return dtype.name
    if isinstance(dtype, str):
        if dtype in _DTYPE_NAMES:
            return dtype
        raise ValueError(
            f"[{op}] Unknown dtype '{dtype}'. Expected one of {', '.join(_DTYPE_NAMES)}."
        )
    try:
        nd = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"[{op}] dtype must be a qmm.Dtype, a dtype name or a numpy dtype, but got "
            f"{_type_name(dtype)}."
        ) from None
    if _BF16 is not None and nd == _BF16:
        return "bfloat16"
    if nd.name in _DTYPE_NAMES:
        return nd.name
    raise ValueError(f"[{op}] Unsupported dtype {nd.name}: {_supported_msg()}.")


def opt_int(v: Any, op: str, name: str) -> Optional[int]:
    """None or an integer (Python int, numpy integer; not bool or float)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"[{op}] {name} must be an int or None, but got a bool.")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"[{op}] {name} must be an int or None, but got {_type_name(v)}.") from None


def as_bool(v: Any, op: str, name: str) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise TypeError(f"[{op}] {name} must be a bool, but got {_type_name(v)}.")


def as_str(v: Any, op: str, name: str) -> str:
    if isinstance(v, str):
        return v
    raise TypeError(f"[{op}] {name} must be a str, but got {_type_name(v)}.")


def opt_array(x: Any, op: str, name: str) -> Optional["_qmm.array"]:
    return None if x is None else as_array(x, op, name)


def where(
    device: Any, stream: Any, op: str
) -> Tuple[Optional["_qmm.Device"], Optional["_qmm.Stream"]]:
    """(device, stream) for the compiled ops from the `device=` (or MLX's `stream=`) argument:
    None, "cpu", "gpu", "gpu:N", qmm.cpu/qmm.gpu, a qmm.Device or a qmm.Stream."""
    if device is not None and stream is not None:
        raise TypeError(f"[{op}] Pass either device= or stream=, not both.")
    d = device if device is not None else stream
    if d is None:
        return None, None
    if isinstance(d, _qmm.Stream):
        return None, d
    if isinstance(d, _qmm.Device):
        return d, None
    if isinstance(d, _qmm.DeviceType):
        return _qmm.Device(d), None
    if isinstance(d, str):
        return _qmm.Device(d), None  # ValueError for unknown names
    raise TypeError(
        f"[{op}] device must be 'cpu', 'gpu', 'gpu:N', a qmm.Device or a qmm.Stream, but got "
        f"{_type_name(d)}."
    )


def _import_copy(a: "_qmm.array") -> "_qmm.array":
    return a.astype(a.dtype.name)
