// The CUDA backend's entry point for the registry (src/register_backends.cpp).
#pragma once

#include <memory>

#include "core/backend.h"

namespace qmm::cuda {

// A backend for NVIDIA GPUs. device_count() is 0 (it never throws) when no GPU or driver exists.
std::unique_ptr<core::Backend> make_backend();

// Which dense large-M path runs: "table" (the measured dispatch table, default), "fused" (the
// fused Hopper kernel for every supported M above the decode range), "wgmma" (the hand-written
// Hopper kernel where it takes the problem above the decode range, the table elsewhere) or
// "cublas" (no fused kernels). The environment variable QMM_CUDA_PREFILL sets it at start-up;
// tests call this to reach every path whatever the table says. Unknown names throw
// std::invalid_argument.
void set_prefill_path(const char* name);

}  // namespace qmm::cuda
