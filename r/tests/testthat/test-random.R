test_that("mlx_rand_normal() gives the shape, dtype and distribution asked for", {
  x <- mlx_rand_normal(c(4, 64))
  expect_equal(mlx_shape(x), c(4L, 64L))
  expect_equal(mlx_dtype(x), "float32")
  v <- as.vector(mlx_rand_normal(c(100, 100), seed = 3))
  expect_equal(mean(v), 0, tolerance = 0.05)
  expect_equal(sd(v), 1, tolerance = 0.05)
  v2 <- as.vector(mlx_rand_normal(10000, mean = 5, sd = 0.5, seed = 4))
  expect_equal(mean(v2), 5, tolerance = 0.02)
  expect_equal(sd(v2), 0.5, tolerance = 0.05)
  for (dt in c("float16", "bfloat16")) {
    expect_equal(mlx_dtype(mlx_rand_normal(c(2, 3), dtype = dt)), dt)
  }
})

test_that("seeds make mlx_rand_normal() reproducible", {
  expect_identical(as.array(mlx_rand_normal(c(3, 5), seed = 7)),
                   as.array(mlx_rand_normal(c(3, 5), seed = 7)))
  set.seed(42)
  a <- as.array(mlx_rand_normal(c(3, 5)))
  b <- as.array(mlx_rand_normal(c(3, 5)))
  set.seed(42)
  expect_identical(as.array(mlx_rand_normal(c(3, 5))), a)
  expect_false(identical(a, b))
})

test_that("mlx_rand_normal() rejects bad arguments with R errors", {
  expect_error(mlx_rand_normal(c(2, 3), dtype = "int32"), "Only floating dtypes")
  expect_error(mlx_rand_normal(c(2, -3)), "non-negative integers")
  expect_error(mlx_rand_normal(c(2, 3), seed = -1), "seed")
  expect_error(mlx_rand_normal(c(2, 3), dtype = "float64"), "float64")
})
