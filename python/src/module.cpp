// The qmm._qmm extension module: devices and streams, the four ops, safetensors I/O, settings.
// The Python package (python/qmm/__init__.py) converts arguments and documents the public
// functions; the functions here take already-converted qmm arrays, devices and streams.
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <map>

#include "bindings.h"

namespace qmm::python {

using namespace nb::literals;

namespace {

// An op's `stream or device` from the two optional arguments the Python layer passes.
StreamOrDevice where(const std::optional<Device>& d, const std::optional<Stream>& s) {
  if (s) return *s;
  if (d) return *d;
  return {};
}

nb::tuple quantize_py(const Array& w, std::optional<int> group_size, std::optional<int> bits,
                      const std::string& mode, const std::optional<Array>& global_scale,
                      std::optional<Device> d, std::optional<Stream> s) {
  Quantized q;
  {
    nb::gil_scoped_release release;
    q = quantize(w, group_size, bits, mode, global_scale, where(d, s));
  }
  if (q.biases) return nb::make_tuple(q.w_q, q.scales, *q.biases);
  return nb::make_tuple(q.w_q, q.scales);
}

Array dequantize_py(const Array& w, const Array& scales, const std::optional<Array>& biases,
                    std::optional<int> group_size, std::optional<int> bits, const std::string& mode,
                    const std::optional<Array>& global_scale,
                    const std::optional<std::string>& dtype, std::optional<Device> d,
                    std::optional<Stream> s) {
  std::optional<Dtype> dt;
  if (dtype) dt = parse_dtype(*dtype);
  nb::gil_scoped_release release;
  return dequantize(w, scales, biases, group_size, bits, mode, global_scale, dt, where(d, s));
}

Array quantized_matmul_py(const Array& x, const Array& w, const std::optional<Array>& scales,
                          const std::optional<Array>& biases, bool transpose,
                          std::optional<int> group_size, std::optional<int> bits,
                          const std::string& mode, std::optional<Device> d,
                          std::optional<Stream> s) {
  nb::gil_scoped_release release;
  return quantized_matmul(x, w, scales, biases, transpose, group_size, bits, mode, where(d, s));
}

Array gather_qmm_py(const Array& x, const Array& w, const std::optional<Array>& scales,
                    const std::optional<Array>& biases, const std::optional<Array>& lhs_indices,
                    const std::optional<Array>& rhs_indices, bool transpose,
                    std::optional<int> group_size, std::optional<int> bits, const std::string& mode,
                    bool sorted_indices, std::optional<Device> d, std::optional<Stream> s) {
  // Released: gather_qmm reads CPU index arrays on the host, which waits for them.
  nb::gil_scoped_release release;
  return gather_qmm(x, w, scales, biases, lhs_indices, rhs_indices, transpose, group_size, bits,
                    mode, sorted_indices, where(d, s));
}

}  // namespace

void bind_ops(nb::module_& m) {
  m.def("_quantize", &quantize_py, "w"_a, "group_size"_a.none(), "bits"_a.none(), "mode"_a,
        "global_scale"_a.none(), "device"_a.none(), "stream"_a.none());
  m.def("_dequantize", &dequantize_py, "w"_a, "scales"_a, "biases"_a.none(), "group_size"_a.none(),
        "bits"_a.none(), "mode"_a, "global_scale"_a.none(), "dtype"_a.none(), "device"_a.none(),
        "stream"_a.none());
  m.def("_quantized_matmul", &quantized_matmul_py, "x"_a, "w"_a, "scales"_a.none(),
        "biases"_a.none(), "transpose"_a, "group_size"_a.none(), "bits"_a.none(), "mode"_a,
        "device"_a.none(), "stream"_a.none());
  m.def("_gather_qmm", &gather_qmm_py, "x"_a, "w"_a, "scales"_a.none(), "biases"_a.none(),
        "lhs_indices"_a.none(), "rhs_indices"_a.none(), "transpose"_a, "group_size"_a.none(),
        "bits"_a.none(), "mode"_a, "sorted_indices"_a, "device"_a.none(), "stream"_a.none());

  // Conversion entry points used by qmm._convert.
  m.def("_import", &import_ndarray, "nd"_a, "as_dtype"_a.none(), "copy"_a,
        "Wraps a numpy array or DLPack tensor as a qmm.array (zero copy unless `copy`).");

  // Devices and streams.
  m.def("default_device", &default_device,
        "The device ops use when given none (qmm.cpu unless "
        "changed).");
  m.def("set_default_device", &set_default_device, "device"_a,
        "Changes the default device; ValueError if it is not available.");
  m.def("is_available", &is_available, "device"_a,
        "True when this build has a backend for `device` and the device exists.");
  m.def("device_count", &device_count, "type"_a, "Number of devices of kind `type`.");
  m.def("default_stream", &default_stream, "device"_a,
        "The stream ops use when given only `device`.");
  m.def("new_stream", &new_stream, "device"_a, "A new stream on `device`.");
  m.def(
      "_synchronize",
      [](std::optional<Stream> s) {
        nb::gil_scoped_release release;
        if (s)
          synchronize(*s);
        else
          synchronize();
      },
      "stream"_a.none());
  m.def("_shutdown", &shutdown, "Called at exit once queued work has finished.");
  m.def(
      "_wait_all",
      [](const std::vector<Array>& arrays) {
        nb::gil_scoped_release release;
        for (const Array& a : arrays) a.wait();
      },
      "arrays"_a);

  // Safetensors I/O.
  m.def(
      "_load_safetensors",
      [](const std::string& path) {
        io::SafetensorsFile f;
        {
          nb::gil_scoped_release release;
          f = io::load_safetensors(path);
        }
        return nb::make_tuple(f.tensors, f.metadata);
      },
      "path"_a);
  m.def(
      "_save_safetensors",
      [](const std::string& path, const std::map<std::string, Array>& tensors,
         const std::map<std::string, std::string>& metadata) {
        nb::gil_scoped_release release;
        io::save_safetensors(path, tensors, metadata);
      },
      "path"_a, "tensors"_a, "metadata"_a);

  // Settings.
  m.def("num_threads", &num_threads,
        "Threads the CPU backend uses (QMM_NUM_THREADS or the "
        "number of hardware threads by default).");
  m.def("set_num_threads", &set_num_threads, "n"_a,
        "Sets the number of CPU threads; ValueError for n < 1.");
}

}  // namespace qmm::python

NB_MODULE(_qmm, m) {
  m.doc() = "qmm's compiled core. Use the `qmm` package, which wraps these functions.";
  m.attr("__version__") = qmm::version();
  qmm::python::bind_types(m);
  qmm::python::bind_array(m);
  qmm::python::bind_ops(m);
}
