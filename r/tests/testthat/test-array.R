test_that("R data round-trips with the R shape as the MLX shape", {
  v <- c(1.5, -2, 3.25, 4)
  m <- matrix(as.numeric(1:6), nrow = 2)
  a3 <- array(as.numeric(1:24), c(2, 3, 4))
  a4 <- array(rnorm(120), c(2, 3, 4, 5))
  for (x in list(v, m, a3, a4)) {
    a <- mlx_array(x)
    expect_s3_class(a, "mlx")
    expect_equal(mlx_shape(a), if (is.null(dim(x))) length(x) else dim(x))
    expect_equal(dim(a), mlx_shape(a))
    expect_equal(length(a), length(x))
    expect_equal(mlx_dtype(a), "float32")
    expect_equal(mlx_device(a), "cpu")
    back <- as.array(a)
    expect_equal(as.vector(back), as.vector(x), tolerance = 1e-7)
    expect_equal(dim(back), if (is.null(dim(x))) length(x) else dim(x))
    expect_equal(as.vector(a), as.vector(x), tolerance = 1e-7)
  }
  expect_equal(as.matrix(mlx_array(m)), m)
})

test_that("element [i, j, k] in R is element (i-1, j-1, k-1) in MLX (C order)", {
  a3 <- array(as.numeric(1:24), c(2, 3, 4))
  a <- mlx_array(a3)
  # mlx_reshape reads in MLX's row-major order: the flat MLX order is R's aperm(rev) order.
  flat <- as.vector(mlx_reshape(a, 24))
  expect_equal(flat, as.vector(aperm(a3, 3:1)))
  m <- matrix(1:6, nrow = 2, byrow = TRUE)
  expect_match(format(mlx_array(m)), "(2, 3) int32", fixed = TRUE)
  expect_output(print(mlx_array(m)), "[[1, 2, 3],", fixed = TRUE)
  expect_equal(as.vector(mlx_reshape(mlx_array(m), c(3, 2))), c(1, 3, 5, 2, 4, 6))
  expect_equal(mlx_shape(mlx_reshape(mlx_array(m), c(-1, 3))), c(2L, 3L))
})

test_that("mlx_array() honours dim and dtype", {
  a <- mlx_array(1:6, dim = c(3, 2))
  expect_equal(mlx_shape(a), c(3L, 2L))
  expect_equal(mlx_dtype(a), "int32")
  expect_identical(as.matrix(a), matrix(1:6, 3))
  expect_equal(mlx_dtype(mlx_array(c(TRUE, FALSE))), "int32")
  big <- c(0, 1, 2^32 - 1)
  u <- mlx_array(big, dtype = "uint32")
  expect_equal(mlx_dtype(u), "uint32")
  expect_identical(as.vector(u), big)
  expect_identical(as.vector(mlx_array(c(0, 255), dtype = "uint8")), c(0L, 255L))
  expect_identical(as.vector(mlx_array(c(-2^40, 2^40), dtype = "int64")), c(-2^40, 2^40))
  h <- mlx_array(c(1, 1 + 2^-12, 65504), dtype = "float16")
  expect_equal(as.vector(h), c(1, 1, 65504))  # 1 + 2^-12 rounds to 1 in float16
  b <- mlx_array(c(1, 1 + 2^-9, 3.140625), dtype = "bfloat16")
  expect_equal(as.vector(b), c(1, 1, 3.140625))
  f <- mlx_array(c(0.1, NA, Inf))
  expect_equal(as.vector(f)[1], 0.1, tolerance = 1e-7)
  expect_true(is.na(as.vector(f)[2]))
  expect_equal(as.vector(f)[3], Inf)
})

test_that("mlx_array() of an mlx array converts dtype and copies", {
  a <- mlx_rand_normal(c(3, 4), seed = 1)
  b <- mlx_array(a, dtype = "bfloat16")
  expect_equal(mlx_dtype(b), "bfloat16")
  expect_equal(mlx_dtype(a), "float32")
  expect_equal(as.array(b), as.array(a), tolerance = 1e-2)
  expect_equal(as.array(mlx_array(a)), as.array(a))
})

test_that("as.matrix() follows base R for non-2-d arrays", {
  a <- mlx_array(c(1, 2, 3))
  expect_equal(as.matrix(a), matrix(c(1, 2, 3), ncol = 1))
  expect_equal(dim(as.matrix(mlx_array(array(1:8, c(2, 2, 2))))), c(8L, 1L))
})

test_that("scalars and empty arrays work", {
  s <- mlx_array(5, dim = integer(0))
  expect_equal(mlx_shape(s), integer(0))
  expect_equal(as.array(s), 5)
  e <- mlx_array(numeric(0), dim = c(0, 4))
  expect_equal(mlx_shape(e), c(0L, 4L))
  expect_equal(dim(as.array(e)), c(0L, 4L))
})

test_that("arrays are freed by the garbage collector", {
  for (i in 1:200) a <- mlx_rand_normal(c(64, 64))
  rm(a)
  expect_silent(gc())
  expect_true(is_mlx(mlx_array(1)))
  expect_false(is_mlx(1))
})
