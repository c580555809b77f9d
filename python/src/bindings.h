// Shared declarations of the qmm._qmm extension (nanobind over the public qmm API only).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <optional>
#include <string>

#include "qmm/qmm.h"

namespace qmm::python {

namespace nb = nanobind;

// A Python-visible dtype object (qmm.float32, ...): a thin wrapper so that it can carry a repr,
// a size and comparisons with strings, as mlx.core.Dtype does.
struct PyDtype {
  Dtype value;
};

// Maps an imported DLPack/buffer array to a qmm::Array without copying (the Python owner is kept
// alive by the array's buffer). `as_dtype` reinterprets the elements (same item size; used for
// ml_dtypes.bfloat16 arrays, which reach C++ as uint16 views). float64 inputs are converted to
// float32 (a copy), as mlx.core.array does. `copy` asks for a contiguous copy instead of a view.
Array import_ndarray(const nb::ndarray<nb::ro>& nd, std::optional<std::string> as_dtype, bool copy);

// A numpy array viewing `a` (copied to the host first when `a` lives on a GPU). bfloat16 arrays
// come back as ml_dtypes.bfloat16 arrays. Waits for the array with the GIL released.
nb::object to_numpy(const Array& a);

// Drops the Python-owned input handles queued by worker threads (needs the GIL). The signature
// is that of a Py_AddPendingCall callback.
int drain_releases(void*);
// Called at interpreter exit, after queued work has finished: releases stop touching Python.
void shutdown();

void bind_types(nb::module_& m);
void bind_array(nb::module_& m);
void bind_ops(nb::module_& m);

}  // namespace qmm::python
