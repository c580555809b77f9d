// qmm.array, qmm.Dtype, qmm.Device, qmm.Stream: the Python side of the public array and device
// types, and the zero-copy exchange with numpy and DLPack producers/consumers.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "bindings.h"

namespace qmm::python {

using namespace nb::literals;
namespace dl = nb::dlpack;

namespace {

// DLPack device codes (dlpack.h): kDLCPU, kDLCUDA, kDLCUDAHost, kDLCUDAManaged.
constexpr int kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13;

const char* kSupported =
    "qmm arrays hold float32, float16, bfloat16, uint8, uint32, int32 or int64 (float64 is "
    "converted to float32)";

// DLPack dtype -> qmm dtype; false for types qmm does not hold.
bool from_dl(dl::dtype t, Dtype* out) {
  using C = dl::dtype_code;
  if (t.lanes != 1) return false;
  auto code = static_cast<C>(t.code);
  if (code == C::Float && t.bits == 32) return *out = Dtype::float32, true;
  if (code == C::Float && t.bits == 16) return *out = Dtype::float16, true;
  if (code == C::Bfloat && t.bits == 16) return *out = Dtype::bfloat16, true;
  if (code == C::UInt && t.bits == 8) return *out = Dtype::uint8, true;
  if (code == C::UInt && t.bits == 32) return *out = Dtype::uint32, true;
  if (code == C::Int && t.bits == 32) return *out = Dtype::int32, true;
  if (code == C::Int && t.bits == 64) return *out = Dtype::int64, true;
  return false;
}

dl::dtype to_dl(Dtype t, bool bf16_as_uint16) {
  using C = dl::dtype_code;
  auto make = [](C c, int bits) {
    dl::dtype d;
    d.code = static_cast<uint8_t>(c);
    d.bits = static_cast<uint8_t>(bits);
    d.lanes = 1;
    return d;
  };
  switch (t) {
    case Dtype::float32: return make(C::Float, 32);
    case Dtype::float16: return make(C::Float, 16);
    case Dtype::bfloat16: return bf16_as_uint16 ? make(C::UInt, 16) : make(C::Bfloat, 16);
    case Dtype::uint8: return make(C::UInt, 8);
    case Dtype::uint32: return make(C::UInt, 32);
    case Dtype::int32: return make(C::Int, 32);
    case Dtype::int64: return make(C::Int, 64);
  }
  return make(C::Float, 32);
}

std::string dl_dtype_name(dl::dtype t) {
  using C = dl::dtype_code;
  const char* kind = "unknown";
  switch (static_cast<C>(t.code)) {
    case C::Int: kind = "int"; break;
    case C::UInt: kind = "uint"; break;
    case C::Float: kind = "float"; break;
    case C::Bfloat: kind = "bfloat"; break;
    case C::Complex: kind = "complex"; break;
    case C::Bool: kind = "bool"; break;
    default: break;
  }
  return std::string(kind) + std::to_string(t.bits);
}

Device from_dl_device(int type, int id) {
  switch (type) {
    case kDLCPU:
    case kDLCUDAHost: return Device::cpu();  // pinned host memory is ordinary host memory
    case kDLCUDA:
    case kDLCUDAManaged: {
      Device d = Device::gpu(id);
      if (!is_available(d))
        throw std::invalid_argument(
            "[array] The input lives on CUDA device " + std::to_string(id) +
            ", which this qmm build cannot use (" +
            (device_count(DeviceType::gpu) ? "no such GPU" : "built without the CUDA backend") +
            "). Move it to the CPU first.");
      return d;
    }
    default:
      throw std::invalid_argument("[array] Unsupported DLPack device type " + std::to_string(type) +
                                  "; qmm takes CPU and CUDA arrays.");
  }
}

int64_t prod(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// float64 input (numpy's default) -> a float32 copy, strided read.
Array float64_to_float32(const nb::ndarray<nb::ro>& nd, const Shape& shape, const Strides& st) {
  if (nd.device_type() != kDLCPU && nd.device_type() != kDLCUDAHost)
    throw nb::type_error(
        "[array] float64 arrays are converted to float32 only on the CPU; "
        "convert the GPU tensor to float32 first.");
  const double* base = reinterpret_cast<const double*>(static_cast<const char*>(nd.data_handle()) +
                                                       nd.byte_offset());
  std::vector<float> out(static_cast<size_t>(prod(shape)));
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(base[off]);
    for (size_t k = shape.size(); k-- > 0;) {  // odometer over the multi-index
      off += st[k];
      if (++idx[k] < shape[k]) break;
      off -= st[k] * shape[k];
      idx[k] = 0;
    }
  }
  return Array::from_data(out.data(), shape, Dtype::float32, Device::cpu());
}

nb::object ml_dtypes_bfloat16() {
  static nb::object bf16;  // imported once; kept for the life of the process
  if (!bf16.is_valid()) bf16 = nb::module_::import_("ml_dtypes").attr("bfloat16");
  return bf16;
}

// Waits for `a` with the GIL released (the op computing it may need the GIL to release a
// Python-owned input when it finishes).
void wait_nogil(const Array& a) {
  nb::gil_scoped_release release;
  a.wait();
}

// An ndarray of framework F viewing `a` (which must be computed); the capsule owner keeps a
// handle to `a`, hence its buffer, alive.
template <class F>
nb::ndarray<F> view_of(const Array& a, bool bf16_as_uint16) {
  auto* keep = new Array(a);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Array*>(p); });
  std::vector<size_t> shape(a.shape().begin(), a.shape().end());
  const Strides& st = a.strides();
  Device d = a.device();
  int dev_type = d.type == DeviceType::cpu ? kDLCPU : kDLCUDA;
  return nb::ndarray<F>(a.raw_data(), shape.size(), shape.data(), owner, st.data(),
                        to_dl(a.dtype(), bf16_as_uint16), dev_type, d.index);
}

std::string device_repr(Device d) {
  return std::string("Device(") + (d.type == DeviceType::cpu ? "cpu" : "gpu") + ", " +
         std::to_string(d.index) + ")";
}

// `dtype` in any form qmm accepts (qmm.Dtype, name, numpy dtype), normalised in Python.
Array checked_astype(const Array& a, nb::handle dtype) {
  nb::object name = nb::module_::import_("qmm._convert").attr("dtype_name")(dtype, "astype");
  Dtype t = parse_dtype(nb::cast<std::string>(name));
  nb::gil_scoped_release release;
  return a.astype(t);
}

// Releasing Python-owned input memory. The last reference to a zero-copy input is often dropped
// on a stream's worker thread, when the op that read it finishes. Taking the GIL there could
// deadlock against a caller that waits with the GIL held, and kills the thread (an abort) once
// the interpreter is finalizing; so a worker only queues the handle, and the main thread drops
// it with the GIL held: at once through Py_AddPendingCall, and at the next import at the latest.
// After shutdown() (the package's atexit hook, once queued work has finished) handles are left
// for the process exit to reclaim.
std::mutex g_release_mutex;
auto* g_release = new std::vector<nb::ndarray<nb::ro>*>();  // never destroyed: used at exit
std::atomic<bool> g_shutdown{false};
std::atomic<bool> g_drain_scheduled{false};

void release_owner(void* p) {
  auto* nd = static_cast<nb::ndarray<nb::ro>*>(p);
  bool shutdown = g_shutdown.load();
  if (!shutdown && PyGILState_Check()) {
    delete nd;
    return;
  }
  {
    std::lock_guard lock(g_release_mutex);
    g_release->push_back(nd);
  }
  if (!shutdown && !g_drain_scheduled.exchange(true))
    if (Py_AddPendingCall(&drain_releases, nullptr) != 0) g_drain_scheduled = false;
}

}  // namespace

int drain_releases(void*) {
  g_drain_scheduled = false;
  std::vector<nb::ndarray<nb::ro>*> v;
  {
    std::lock_guard lock(g_release_mutex);
    if (g_release->empty()) return 0;
    v.swap(*g_release);
  }
  for (auto* p : v) delete p;
  return 0;
}

void shutdown() {
  drain_releases(nullptr);
  g_shutdown = true;
}

Array import_ndarray(const nb::ndarray<nb::ro>& nd, std::optional<std::string> as_dtype,
                     bool copy) {
  Shape shape(nd.ndim());
  Strides strides(nd.ndim());
  for (size_t i = 0; i < nd.ndim(); ++i) {
    shape[i] = static_cast<int64_t>(nd.shape(i));
    strides[i] = nd.stride(i);
  }
  dl::dtype src = nd.dtype();
  Dtype dt;
  if (as_dtype) {
    dt = parse_dtype(*as_dtype);
    if (src.bits != 8 * itemsize(dt) || src.lanes != 1)
      throw nb::type_error(("[array] Cannot view " + dl_dtype_name(src) + " elements as " +
                            std::string(dtype_name(dt)) + ".")
                               .c_str());
  } else if (!from_dl(src, &dt)) {
    if (static_cast<dl::dtype_code>(src.code) == dl::dtype_code::Float && src.bits == 64 &&
        src.lanes == 1)
      return float64_to_float32(nd, shape, strides);
    throw nb::type_error(
        ("[array] Unsupported dtype " + dl_dtype_name(src) + ": " + kSupported + ".").c_str());
  }
  Device dev = from_dl_device(nd.device_type(), nd.device_id());
  // The owner is a second reference to the imported handle, released with the GIL held (see
  // release_owner: the last reference may go on a stream's worker thread).
  drain_releases(nullptr);
  auto* held = new nb::ndarray<nb::ro>(nd);
  std::shared_ptr<void> owner(held, &release_owner);
  void* data = static_cast<char*>(const_cast<void*>(nd.data_handle())) + nd.byte_offset();
  Array a = Array::wrap(data, std::move(shape), std::move(strides), dt, dev, std::move(owner));
  if (copy) {
    nb::gil_scoped_release release;
    a = a.astype(dt);  // always a fresh, contiguous buffer
  }
  return a;
}

nb::object to_numpy(const Array& in) {
  Array a = in;
  {
    nb::gil_scoped_release release;
    if (a.device().type != DeviceType::cpu) a = a.to(Device::cpu());
    a.wait();
  }
  nb::object arr = view_of<nb::numpy>(a, /*bf16_as_uint16=*/true).cast();
  if (a.dtype() == Dtype::bfloat16) arr = arr.attr("view")(ml_dtypes_bfloat16());
  return arr;
}

void bind_types(nb::module_& m) {
  nb::class_<PyDtype>(m, "Dtype",
                      "An element type of qmm arrays (qmm.float32, qmm.float16, qmm.bfloat16, "
                      "qmm.uint8, qmm.uint32, qmm.int32, qmm.int64).")
      .def(
          "__init__",
          [](PyDtype* self, const std::string& name) { new (self) PyDtype{parse_dtype(name)}; },
          "name"_a, "The dtype called `name` (e.g. 'bfloat16'); ValueError for unknown names.")
      .def_prop_ro(
          "size", [](PyDtype d) { return itemsize(d.value); }, "Bytes per element.")
      .def_prop_ro(
          "name", [](PyDtype d) { return std::string(dtype_name(d.value)); },
          "MLX's name of the dtype, e.g. 'float32'.")
      .def("__repr__", [](PyDtype d) { return "qmm." + std::string(dtype_name(d.value)); })
      .def("__str__", [](PyDtype d) { return std::string(dtype_name(d.value)); })
      .def("__hash__", [](PyDtype d) { return std::hash<int>()(static_cast<int>(d.value)); })
      .def("__eq__", [](PyDtype a, PyDtype b) { return a.value == b.value; })
      .def("__eq__", [](PyDtype a, const std::string& b) { return dtype_name(a.value) == b; })
      .def("__eq__", [](PyDtype, nb::handle) { return false; })
      .def("__ne__", [](PyDtype a, PyDtype b) { return a.value != b.value; })
      .def("__ne__", [](PyDtype a, const std::string& b) { return dtype_name(a.value) != b; })
      .def("__ne__", [](PyDtype, nb::handle) { return true; });
  for (Dtype t : {Dtype::float32, Dtype::float16, Dtype::bfloat16, Dtype::uint8, Dtype::uint32,
                  Dtype::int32, Dtype::int64})
    m.attr(std::string(dtype_name(t)).c_str()) = PyDtype{t};

  nb::enum_<DeviceType>(m, "DeviceType", "The kind of a device: qmm.cpu or qmm.gpu.")
      .value("cpu", DeviceType::cpu)
      .value("gpu", DeviceType::gpu);
  m.attr("cpu") = DeviceType::cpu;
  m.attr("gpu") = DeviceType::gpu;

  nb::class_<Device>(m, "Device", "A compute device: the host CPU or one GPU.")
      .def(
          "__init__",
          [](Device* self, DeviceType t, int index) {
            new (self) Device{t, index};
          },
          "type"_a, "index"_a = 0, "The device of kind `type` (qmm.cpu or qmm.gpu) and `index`.")
      .def(
          "__init__",
          [](Device* self, const std::string& name) { new (self) Device(parse_device(name)); },
          "name"_a, "Parses 'cpu', 'gpu' or 'gpu:N'.")
      .def_ro("type", &Device::type, "qmm.cpu or qmm.gpu.")
      .def_ro("index", &Device::index, "The device's index among devices of its kind.")
      .def("__repr__", &device_repr)
      .def("__str__", [](Device d) { return to_string(d); })
      .def("__hash__",
           [](Device d) { return std::hash<int>()(static_cast<int>(d.type) * 1024 + d.index); })
      .def("__eq__", [](Device a, Device b) { return a == b; })
      .def("__eq__", [](Device a, DeviceType t) { return a.type == t; })
      .def("__eq__",
           [](Device a, const std::string& s) {
             try {
               return a == parse_device(s);
             } catch (const std::invalid_argument&) {
               return false;
             }
           })
      .def("__eq__", [](Device, nb::handle) { return false; })
      .def("__ne__", [](Device a, Device b) { return !(a == b); })
      .def("__ne__", [](Device a, DeviceType t) { return a.type != t; })
      .def("__ne__", [](Device, nb::handle) { return true; });

  nb::class_<Stream>(m, "Stream",
                     "An ordered queue of work on one device (see qmm.new_stream and "
                     "qmm.default_stream).")
      .def_prop_ro("device", &Stream::device, "The device the stream runs on.")
      .def_prop_ro("index", &Stream::index, "The stream's index on its device (0: default).")
      .def("__repr__",
           [](Stream s) {
             return "Stream(" + device_repr(s.device()) + ", " + std::to_string(s.index()) + ")";
           })
      .def("__hash__",
           [](Stream s) {
             return std::hash<int>()(
                 (static_cast<int>(s.device().type) * 1024 + s.device().index) * 65536 + s.index());
           })
      .def("__eq__", [](Stream a, Stream b) { return a == b; })
      .def("__eq__", [](Stream, nb::handle) { return false; })
      .def("__ne__", [](Stream a, Stream b) { return !(a == b); })
      .def("__ne__", [](Stream, nb::handle) { return true; });
}

void bind_array(nb::module_& m) {
  nb::class_<Array>(m, "array",
                    "An n-dimensional array on a device, as returned by the qmm ops. Results of "
                    "ops may still be being computed; reading them (numpy(), tolist(), repr, "
                    "DLPack) waits. Convert with np.asarray(a) (bfloat16 as ml_dtypes.bfloat16) "
                    "or torch.from_dlpack(a), both without copying.")
      .def(
          "__init__",
          [](Array* self, nb::handle obj, nb::handle dtype) {
            nb::object conv = nb::module_::import_("qmm._convert").attr("array_copy");
            new (self) Array(nb::cast<Array>(conv(obj, dtype)));
          },
          "obj"_a, "dtype"_a = nb::none(),
          "A new array holding a copy of `obj` (a numpy array, a DLPack tensor, a qmm.array, a "
          "Python scalar or nested list), converted to `dtype` if given. Python floats become "
          "float32 and ints int32, as in mlx.core.array.")
      .def_prop_ro(
          "shape",
          [](const Array& a) {
            nb::list l;
            for (int64_t d : a.shape()) l.append(d);
            return nb::tuple(l);
          },
          "The array's shape, a tuple of ints.")
      .def_prop_ro(
          "dtype", [](const Array& a) { return PyDtype{a.dtype()}; },
          "The element type (a qmm.Dtype).")
      .def_prop_ro("device", &Array::device, "The device holding the array.")
      .def_prop_ro("ndim", &Array::ndim, "Number of dimensions.")
      .def_prop_ro("size", &Array::size, "Number of elements.")
      .def_prop_ro("nbytes", &Array::nbytes, "Bytes of the elements.")
      .def_prop_ro(
          "itemsize", [](const Array& a) { return itemsize(a.dtype()); }, "Bytes per element.")
      .def_prop_ro(
          "strides", [](const Array& a) { return std::vector<int64_t>(a.strides()); },
          "Strides in elements (not bytes).")
      .def("__len__",
           [](const Array& a) {
             if (a.ndim() == 0) throw nb::type_error("len() of a 0-d array");
             return a.shape(0);
           })
      .def("wait", &wait_nogil,
           "Blocks until the array has been computed; raises the error its "
           "computation raised, if any.")
      .def(
          "__array__",
          [](const Array& a, nb::handle dtype, nb::handle copy) {
            if (copy.ptr() == Py_False && a.device().type != DeviceType::cpu)
              throw std::invalid_argument(
                  "[array] A GPU array cannot be viewed by numpy without a copy (copy=False).");
            nb::object arr = to_numpy(a);
            if (!dtype.is_none()) arr = arr.attr("astype")(dtype, "copy"_a = false);
            if (copy.ptr() == Py_True) arr = arr.attr("copy")();
            return arr;
          },
          "dtype"_a = nb::none(), "copy"_a = nb::none(),
          "A numpy view of the array (a copy for GPU arrays).")
      .def("numpy", &to_numpy,
           "The array as a numpy array, viewing the same memory for CPU arrays (bfloat16 as "
           "ml_dtypes.bfloat16).")
      .def(
          "__dlpack__",
          [](const Array& in, nb::kwargs kwargs) {
            Array a = in;
            bool copy = false;
            if (kwargs.contains("copy")) {
              nb::object c = kwargs["copy"];
              copy = !c.is_none() && nb::cast<bool>(c);
              nb::del(kwargs["copy"]);
            }
            {
              nb::gil_scoped_release release;
              if (copy) a = a.astype(a.dtype());
              a.wait();  // consumers on any stream see finished data
            }
            nb::object o = view_of<nb::array_api>(a, /*bf16_as_uint16=*/false).cast();
            return o.attr("__dlpack__")(**kwargs);
          },
          "kwargs"_a,
          "DLPack export (stream=, max_version=, dl_device=, copy= as in the array API "
          "standard); the data is finished before the capsule is returned.")
      .def(
          "__dlpack_device__",
          [](const Array& a) {
            Device d = a.device();
            return nb::make_tuple(d.type == DeviceType::cpu ? kDLCPU : kDLCUDA, d.index);
          },
          "(device type, index) as DLPack codes: (1, 0) for the CPU, (2, i) for CUDA GPU i.")
      .def(
          "tolist",
          [](const Array& a) {
            nb::object arr = to_numpy(a);
            if (a.dtype() == Dtype::bfloat16) arr = arr.attr("astype")("float32");
            return arr.attr("tolist")();
          },
          "The elements as (nested) Python lists of floats or ints.")
      .def(
          "item",
          [](const Array& a) {
            if (a.size() != 1)
              throw std::invalid_argument(
                  "[item] The array must have exactly one element but "
                  "has shape " +
                  shape_to_string(a.shape()) + ".");
            nb::object arr = to_numpy(a);
            if (a.dtype() == Dtype::bfloat16) arr = arr.attr("astype")("float32");
            return arr.attr("item")();
          },
          "The only element as a Python scalar.")
      .def("astype", &checked_astype, "dtype"_a,
           "A contiguous copy converted to `dtype` (a qmm.Dtype, a name such as 'float16', or "
           "a numpy dtype).")
      .def(
          "to",
          [](const Array& a, Device d) {
            nb::gil_scoped_release release;
            return a.to(d);
          },
          "device"_a, "A contiguous copy on `device`.")
      .def(
          "reshape",
          [](const Array& a, std::vector<int64_t> shape) {
            nb::gil_scoped_release release;
            return a.reshape(Shape(shape.begin(), shape.end()));
          },
          "shape"_a,
          "A view (or a copy, when not contiguous) with another shape; -1 infers one "
          "axis.")
      .def("swapaxes", &Array::swapaxes, "axis1"_a, "axis2"_a, "A view with two axes exchanged.")
      .def_prop_ro(
          "T",
          [](const Array& a) {
            Array t = a;
            for (int i = 0, n = a.ndim(); i < n / 2; ++i) t = t.swapaxes(i, n - 1 - i);
            return t;
          },
          "A view with the axes reversed (numpy's .T).")
      .def("__repr__", [](const Array& a) {
        std::string text;
        {
          nb::gil_scoped_release release;
          text = a.to_string();
        }
        return text;
      });
}

}  // namespace qmm::python
