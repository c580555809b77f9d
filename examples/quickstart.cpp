// The README's C++ quick start (built and run by ctest, so it stays true).
#include <cstdio>

#include "qmm/qmm.h"

int main() {
  using qmm::Array;
  Array x = Array::random_normal({4, 64}, qmm::Dtype::float32, /*seed=*/1);
  Array w = Array::random_normal({128, 64}, qmm::Dtype::float32, /*seed=*/2);
  // Quantize w once (affine, 4 bits, groups of 32), then multiply: y = x @ dequantize(w).T
  qmm::Quantized q = qmm::quantize(w, /*group_size=*/32, /*bits=*/4);
  Array y = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, /*transpose=*/true, 32, 4);
  // Or let quantized_matmul quantize w itself (scales omitted, w floating point):
  Array y2 = qmm::quantized_matmul(x, w, std::nullopt, std::nullopt, true, 32);
  std::vector<float> out = y.to_vector<float>();  // waits for the result
  std::printf("y %s, y[0,0] = %.4f, same as auto-quantized: %s\n",
              qmm::shape_to_string(y.shape()).c_str(), out[0],
              out == y2.to_vector<float>() ? "yes" : "no");
  return out == y2.to_vector<float>() ? 0 : 1;
}
