#include <gtest/gtest.h>

#include "qmm/qmm.h"

using qmm::Array;
using qmm::Dtype;

TEST(Array, FromVectorRoundTrip) {
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  Array a = Array::from_vector(v, {2, 3});
  EXPECT_EQ(a.shape(), (qmm::Shape{2, 3}));
  EXPECT_EQ(a.to_vector<float>(), v);
  Array t = a.transpose_last2();
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}
