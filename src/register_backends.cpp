// The composition root: registers every backend this build contains. The core reaches
// backends only through the registry, so a CPU-only build has no CUDA symbols.
#include "core/backend.h"
#include "cpu/backend.h"
#if defined(QMM_HAVE_CUDA)
#include "cuda/backend.h"
#endif

namespace qmm::core {

void register_builtin_backends() {
  register_backend(DeviceType::cpu, cpu::make_backend());
#if defined(QMM_HAVE_CUDA)
  register_backend(DeviceType::gpu, cuda::make_backend());
#endif
}

}  // namespace qmm::core
