// The CUDA backend's entry point for the registry (src/register_backends.cpp).
#pragma once

#include <memory>

#include "core/backend.h"

namespace qmm::cuda {

// A backend for NVIDIA GPUs. device_count() is 0 (it never throws) when no GPU or driver exists.
std::unique_ptr<core::Backend> make_backend();

}  // namespace qmm::cuda
