#include <gtest/gtest.h>

#include "core/formats.h"

TEST(Formats, PackVectors) {
  std::vector<uint8_t> codes(32);
  for (int i = 0; i < 32; ++i) codes[i] = i % 8;
  uint32_t w[3];
  qmm::core::pack_codes(codes.data(), 32, 3, w);
  EXPECT_EQ(w[0], 0x88fac688u);
  EXPECT_EQ(w[1], 0xc688fac6u);
  EXPECT_EQ(w[2], 0xfac688fau);
}
