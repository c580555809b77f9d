test_that("devices and streams", {
  expect_true(mlx_default_device() %in% c("cpu", "gpu"))
  old <- mlx_default_device()
  expect_equal(mlx_default_device("cpu"), "cpu")
  expect_equal(mlx_default_device(), "cpu")
  expect_type(mlx_has_gpu(), "logical")
  s <- mlx_new_stream("cpu")
  expect_s3_class(s, "mlx_stream")
  expect_equal(s$device, "cpu")
  expect_output(print(s), "<mlx_stream device=cpu index=")
  s2 <- mlx_new_stream("cpu")
  expect_false(identical(s$index, s2$index))
  x <- mlx_rand_normal(c(4, 64), device = s)
  y <- mlx_quantized_matmul(x, mlx_rand_normal(c(32, 64)), device = s)
  expect_null(mlx_synchronize(s))
  expect_null(mlx_synchronize("cpu"))
  expect_equal(mlx_device(y), "cpu")
  expect_equal(mlx_shape(y), c(4L, 32L))
  if (old != mlx_default_device()) mlx_default_device(old)
  expect_true(qmm_num_threads() >= 1)
  n <- qmm_num_threads()
  expect_equal(qmm_num_threads(1), 1)
  expect_equal(qmm_num_threads(n), n)
})

test_that("unknown or unavailable devices are R errors", {
  expect_error(mlx_array(1, device = "tpu"), "Unknown device 'tpu'")
  expect_error(mlx_new_stream("tpu"), "Unknown device")
  expect_error(mlx_quantize(mlx_rand_normal(c(8, 64)), device = 3), "device")
  skip_if(mlx_has_gpu(), "a GPU is available")
  expect_error(mlx_default_device("gpu"), "not available")
  expect_error(mlx_quantized_matmul(mlx_rand_normal(c(4, 64)), mlx_rand_normal(c(8, 64)),
                                    device = "gpu"), "gpu")
  expect_equal(mlx_default_device(), "cpu")
})

test_that("ops run on the GPU and match the CPU", {
  skip_if_not(mlx_has_gpu(), "no GPU in this build or machine")
  x <- mlx_rand_normal(c(8, 128), seed = 1)
  w <- mlx_rand_normal(c(64, 128), seed = 2)
  q <- mlx_quantize(w, group_size = 64, bits = 4, device = "gpu")
  expect_equal(mlx_device(q$w_q), "gpu")
  qc <- mlx_quantize(w, group_size = 64, bits = 4, device = "cpu")
  expect_identical(as.array(q$w_q), as.array(qc$w_q))
  y <- mlx_quantized_matmul(x, q$w_q, q$scales, q$biases, device = "gpu")
  yc <- mlx_quantized_matmul(x, qc$w_q, qc$scales, qc$biases, device = "cpu")
  expect_lt(rel_err(as.matrix(y), as.matrix(yc)), 1e-5)
  g <- mlx_gather_qmm(mlx_array(array(rnorm(3 * 128), c(3, 1, 128))),
                      mlx_array(array(as.matrix(q$w_q), c(1, 64, 16)), dtype = "uint32"),
                      mlx_array(array(as.matrix(q$scales), c(1, 64, 2))),
                      mlx_array(array(as.matrix(q$biases), c(1, 64, 2))),
                      rhs_indices = c(1L, 1L, 1L), device = mlx_new_stream("gpu"))
  expect_equal(mlx_shape(g), c(3L, 1L, 64L))
})
