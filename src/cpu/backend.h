// Factory of the CPU backend (registered by src/register_backends.cpp).
#pragma once

#include <memory>

#include "core/backend.h"

namespace qmm::cpu {
std::unique_ptr<core::Backend> make_backend();
}
