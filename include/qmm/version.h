// Library version.
#pragma once

#define QMM_VERSION_MAJOR 0
#define QMM_VERSION_MINOR 1
#define QMM_VERSION_PATCH 0

namespace qmm {
// "0.1.0".
const char* version();
}  // namespace qmm
