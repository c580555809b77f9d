# Bad input gives an R error carrying the core's message; the R session survives.

test_that("quantize / dequantize errors carry the core's messages", {
  w <- mlx_rand_normal(c(16, 64))
  expect_error(mlx_quantize(w, group_size = 48), "\\[quantize\\]")
  expect_error(mlx_quantize(w, bits = 7), "The requested number of bits 7 is not supported")
  expect_error(mlx_quantize(w, mode = "int4"), "Invalid quantization mode 'int4'")
  expect_error(mlx_quantize(w, mode = "mxfp4"), "mxfp4 quantization requires group size 32")
  expect_error(mlx_quantize(mlx_rand_normal(64)), "\\[quantize\\]")
  expect_error(mlx_quantize(mlx_array(matrix(1:64, 1))), "\\[quantize\\]")
  expect_error(mlx_quantize(w, group_size = 1.5), "`group_size` must be a single integer")
  expect_error(mlx_quantize("w"), "must be an mlx array or a numeric")
  q <- mlx_quantize(w, group_size = 32, bits = 4, mode = "mxfp4")
  expect_error(mlx_dequantize(q$w_q, q$scales, mlx_rand_normal(c(16, 2)), group_size = 32,
                              mode = "mxfp4"), "\\[dequantize\\]")
  qa <- mlx_quantize(w)
  expect_error(mlx_dequantize(qa$w_q, qa$scales), "\\[dequantize\\]")
  expect_error(mlx_dequantize(qa$w_q, qa$scales, qa$biases, bits = 8), "\\[dequantize\\]")
  expect_error(mlx_dequantize(qa$w_q, qa$scales, qa$biases, dtype = "int32"), "\\[dequantize\\]")
})

test_that("quantized_matmul / gather_qmm errors carry the core's messages", {
  x <- mlx_rand_normal(c(4, 64))
  w <- mlx_rand_normal(c(32, 64))
  q <- mlx_quantize(w)
  expect_error(mlx_quantized_matmul(mlx_rand_normal(c(4, 32)), q$w_q, q$scales, q$biases),
               "\\[quantized_matmul\\] Last dimension of first input")
  expect_error(mlx_quantized_matmul(x, q$w_q),
               "Scales must be provided when the weight matrix is already quantized")
  expect_error(mlx_quantized_matmul(x, q$w_q, q$scales),
               "Biases must be provided for affine quantization")
  expect_error(mlx_quantized_matmul(x, q$w_q, q$scales, q$biases, bits = 8),
               "\\[quantized_matmul\\]")
  expect_error(mlx_quantized_matmul(x, q$w_q, mlx_rand_normal(c(16, 1)), mlx_rand_normal(c(16, 1))),
               "\\[quantized_matmul\\]")
  q4 <- mlx_quantize(w, group_size = 32, mode = "mxfp4")
  expect_error(mlx_quantized_matmul(mlx_array(matrix(1L, 4, 64)), q4$w_q, q4$scales,
                                    group_size = 32, mode = "mxfp4"),
               "Only real floating types")
  expect_error(mlx_quantized_matmul(x, w, biases = q$biases), "Biases were given without scales")
  expect_error(mlx_quantized_matmul(x, w, transpose = NA), "`transpose` must be TRUE or FALSE")
  expect_error(mlx_quantized_matmul(x, w, mode = c("affine", "mxfp4")), "`mode`")
  expect_error(mlx_gather_qmm(mlx_rand_normal(64), q$w_q, q$scales, q$biases,
                              rhs_indices = 1L), "\\[gather_qmm\\]")
})

test_that("array construction errors", {
  expect_error(mlx_array("a"), "numeric, integer or logical")
  expect_error(mlx_array(factor("a")), "numeric, integer or logical")
  expect_error(mlx_array(1:6, dim = c(4, 2)), "has 6 elements")
  expect_error(mlx_array(c(1, 256), dtype = "uint8"), "cannot be stored as uint8")
  expect_error(mlx_array(c(-1), dtype = "uint32"), "cannot be stored as uint32")
  expect_error(mlx_array(c(1L, NA), dtype = "int32"), "no NA")
  expect_error(mlx_array(0.5, dtype = "int32"), "cannot be stored as int32")
  expect_error(mlx_array(1, dtype = "float64"), "Unknown dtype 'float64'")
  expect_error(mlx_array(mlx_array(1), dim = 1), "mlx_reshape")
  expect_error(mlx_reshape(mlx_array(1:6), c(4, 2)), "Cannot reshape array of size 6")
  expect_error(mlx_shape(1:3), "must be an mlx array")
})

test_that("a released array (saved and reloaded) is an error, not a crash", {
  a <- mlx_rand_normal(c(2, 2))
  f <- tempfile(fileext = ".rds")
  saveRDS(a, f)
  b <- readRDS(f)
  expect_error(as.array(b), "released")
  expect_error(mlx_shape(b), "released")
  expect_error(mlx_quantize(b), "released")
  expect_output(print(b), "released")
  expect_equal(dim(as.array(a)), c(2L, 2L))
})
