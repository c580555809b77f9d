"""
qmm's compiled core. Use the `qmm` package, which wraps these functions.
"""

from collections.abc import Sequence
import enum
from typing import overload


class Dtype:
    """
    An element type of qmm arrays (qmm.float32, qmm.float16, qmm.bfloat16, qmm.uint8, qmm.uint32, qmm.int32, qmm.int64).
    """

    def __init__(self, name: str) -> None:
        """
        The dtype called `name` (e.g. 'bfloat16'); ValueError for unknown names.
        """

    @property
    def size(self) -> int:
        """Bytes per element."""

    @property
    def name(self) -> str:
        """MLX's name of the dtype, e.g. 'float32'."""

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __hash__(self) -> int: ...

    @overload
    def __eq__(self, arg: Dtype, /) -> bool: ...

    @overload
    def __eq__(self, arg: str, /) -> bool: ...

    @overload
    def __eq__(self, arg: object, /) -> bool: ...

    @overload
    def __ne__(self, arg: Dtype, /) -> bool: ...

    @overload
    def __ne__(self, arg: str, /) -> bool: ...

    @overload
    def __ne__(self, arg: object, /) -> bool: ...

float32: Dtype = ...

float16: Dtype = ...

bfloat16: Dtype = ...

uint8: Dtype = ...

uint32: Dtype = ...

int32: Dtype = ...

int64: Dtype = ...

class DeviceType(enum.Enum):
    """The kind of a device: qmm.cpu or qmm.gpu."""

    cpu = 0

    gpu = 1

cpu: DeviceType = DeviceType.cpu

gpu: DeviceType = DeviceType.gpu

class Device:
    """A compute device: the host CPU or one GPU."""

    @overload
    def __init__(self, type: DeviceType, index: int = 0) -> None:
        """The device of kind `type` (qmm.cpu or qmm.gpu) and `index`."""

    @overload
    def __init__(self, name: str) -> None:
        """Parses 'cpu', 'gpu' or 'gpu:N'."""

    @property
    def type(self) -> DeviceType:
        """qmm.cpu or qmm.gpu."""

    @property
    def index(self) -> int:
        """The device's index among devices of its kind."""

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __hash__(self) -> int: ...

    @overload
    def __eq__(self, arg: Device, /) -> bool: ...

    @overload
    def __eq__(self, arg: DeviceType, /) -> bool: ...

    @overload
    def __eq__(self, arg: str, /) -> bool: ...

    @overload
    def __eq__(self, arg: object, /) -> bool: ...

    @overload
    def __ne__(self, arg: Device, /) -> bool: ...

    @overload
    def __ne__(self, arg: DeviceType, /) -> bool: ...

    @overload
    def __ne__(self, arg: object, /) -> bool: ...

class Stream:
    """
    An ordered queue of work on one device (see qmm.new_stream and qmm.default_stream).
    """

    @property
    def device(self) -> Device:
        """The device the stream runs on."""

    @property
    def index(self) -> int:
        """The stream's index on its device (0: default)."""

    def __repr__(self) -> str: ...

    def __hash__(self) -> int: ...

    @overload
    def __eq__(self, arg: Stream, /) -> bool: ...

    @overload
    def __eq__(self, arg: object, /) -> bool: ...

    @overload
    def __ne__(self, arg: Stream, /) -> bool: ...

    @overload
    def __ne__(self, arg: object, /) -> bool: ...

class array:
    """
    An n-dimensional array on a device, as returned by the qmm ops. Results of ops may still be being computed; reading them (numpy(), tolist(), repr, DLPack) waits. Convert with np.asarray(a) (bfloat16 as ml_dtypes.bfloat16) or torch.from_dlpack(a), both without copying.
    """

    def __init__(self, obj: object, dtype: object | None = None) -> None:
        """
        A new array holding a copy of `obj` (a numpy array, a DLPack tensor, a qmm.array, a Python scalar or nested list), converted to `dtype` if given. Python floats become float32 and ints int32, as in mlx.core.array.
        """

    @property
    def shape(self) -> tuple:
        """The array's shape, a tuple of ints."""

    @property
    def dtype(self) -> Dtype:
        """The element type (a qmm.Dtype)."""

    @property
    def device(self) -> Device:
        """The device holding the array."""

    @property
    def ndim(self) -> int:
        """Number of dimensions."""

    @property
    def size(self) -> int:
        """Number of elements."""

    @property
    def nbytes(self) -> int:
        """Bytes of the elements."""

    @property
    def itemsize(self) -> int:
        """Bytes per element."""

    @property
    def strides(self) -> list[int]:
        """Strides in elements (not bytes)."""

    def __len__(self) -> int: ...

    def wait(self) -> None:
        """
        Blocks until the array has been computed; raises the error its computation raised, if any.
        """

    def __array__(self, dtype: object | None = None, copy: object | None = None) -> object:
        """A numpy view of the array (a copy for GPU arrays)."""

    def numpy(self) -> object:
        """
        The array as a numpy array, viewing the same memory for CPU arrays (bfloat16 as ml_dtypes.bfloat16).
        """

    def __dlpack__(self, **kwargs) -> object:
        """
        DLPack export (stream=, max_version=, dl_device=, copy= as in the array API standard); the data is finished before the capsule is returned.
        """

    def __dlpack_device__(self) -> tuple:
        """
        (device type, index) as DLPack codes: (1, 0) for the CPU, (2, i) for CUDA GPU i.
        """

    def tolist(self) -> object:
        """The elements as (nested) Python lists of floats or ints."""

    def item(self) -> object:
        """The only element as a Python scalar."""

    def astype(self, dtype: object) -> array:
        """
        A contiguous copy converted to `dtype` (a qmm.Dtype, a name such as 'float16', or a numpy dtype).
        """

    def to(self, device: Device) -> array:
        """A contiguous copy on `device`."""

    def reshape(self, shape: Sequence[int]) -> array:
        """
        A view (or a copy, when not contiguous) with another shape; -1 infers one axis.
        """

    def swapaxes(self, axis1: int, axis2: int) -> array:
        """A view with two axes exchanged."""

    @property
    def T(self) -> array:
        """A view with the axes reversed (numpy's .T)."""

    def __repr__(self) -> str: ...

def default_device() -> Device:
    """The device ops use when given none (qmm.cpu unless changed)."""

def set_default_device(device: Device) -> None:
    """Changes the default device; ValueError if it is not available."""

def is_available(device: Device) -> bool:
    """True when this build has a backend for `device` and the device exists."""

def device_count(type: DeviceType) -> int:
    """Number of devices of kind `type`."""

def default_stream(device: Device) -> Stream:
    """The stream ops use when given only `device`."""

def new_stream(device: Device) -> Stream:
    """A new stream on `device`."""

def num_threads() -> int:
    """
    Threads the CPU backend uses (QMM_NUM_THREADS or the number of hardware threads by default).
    """

def set_num_threads(n: int) -> None:
    """Sets the number of CPU threads; ValueError for n < 1."""
