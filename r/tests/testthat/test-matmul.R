test_that("the documented example runs verbatim and matches x %*% t(dequantized w) in R", {
  x <- mlx_rand_normal(c(4, 64)); w <- mlx_rand_normal(c(128, 64))
  result <- mlx_quantized_matmul(x, w, group_size = 32)
  quant <- mlx_quantize(w, group_size = 32, bits = 4)
  result <- mlx_quantized_matmul(x, quant$w_q, quant$scales, quant$biases, group_size = 32)

  expect_equal(mlx_shape(result), c(4L, 128L))
  expect_equal(mlx_dtype(result), "float32")
  w_hat <- ref_dequantize(quant$w_q, quant$scales, quant$biases, 32, 4, "affine")
  expected <- as.matrix(x) %*% t(w_hat)
  expect_lt(rel_err(as.matrix(result), expected), 1e-5)
  # Against the package's own dequantize, too.
  w_deq <- as.matrix(mlx_dequantize(quant$w_q, quant$scales, quant$biases, group_size = 32))
  expect_lt(rel_err(as.matrix(result), as.matrix(x) %*% t(w_deq)), 1e-5)
  # The first call (scales = NULL) quantizes w itself, the same way.
  auto <- mlx_quantized_matmul(x, w, group_size = 32)
  expect_equal(mlx_shape(auto), c(4L, 128L))
  expect_lt(rel_err(as.matrix(auto), expected), 1e-5)
})

test_that("the documented example runs verbatim in a fresh Rscript", {
  rscript <- file.path(R.home("bin"), "Rscript")
  skip_if_not(file.exists(rscript))
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(qmm)",
    "x <- mlx_rand_normal(c(4, 64)); w <- mlx_rand_normal(c(128, 64))",
    "result <- mlx_quantized_matmul(x, w, group_size = 32)",
    "quant <- mlx_quantize(w, group_size = 32, bits = 4)",
    "result <- mlx_quantized_matmul(x, quant$w_q, quant$scales, quant$biases, group_size = 32)",
    "cat(mlx_shape(result), '\\n')"
  ), script)
  out <- suppressWarnings(system2(rscript, script, stdout = TRUE, stderr = TRUE,
                                  env = paste0("R_LIBS=", paste(.libPaths(), collapse = ":"))))
  expect_null(attr(out, "status"))
  expect_equal(trimws(tail(out, 1)), "4 128")
})

test_that("every mode: quantized_matmul equals x %*% t(W) computed in R", {
  specs <- all_specs()
  x <- mlx_rand_normal(c(5, 128), seed = 21)
  w <- mlx_rand_normal(c(48, 128), seed = 22)
  xr <- as.matrix(x)
  for (i in seq_len(nrow(specs))) {
    gs <- specs$group_size[i]
    bits <- specs$bits[i]
    mode <- specs$mode[i]
    info <- sprintf("mode=%s group_size=%d bits=%d", mode, gs, bits)
    q <- mlx_quantize(w, group_size = gs, bits = bits, mode = mode)
    y <- mlx_quantized_matmul(x, q$w_q, q$scales, q$biases, group_size = gs, bits = bits,
                              mode = mode)
    expect_equal(mlx_shape(y), c(5L, 48L), info = info)
    w_hat <- ref_dequantize(q$w_q, q$scales, q$biases, gs, bits, mode)
    expect_lt(rel_err(as.matrix(y), xr %*% t(w_hat)), 1e-5)
    y_auto <- mlx_quantized_matmul(x, w, group_size = gs, bits = bits, mode = mode)
    expect_equal(as.matrix(y_auto), as.matrix(y), tolerance = 1e-6, info = info)
  }
})

test_that("transpose = FALSE multiplies by W itself (groups along its last axis)", {
  x <- mlx_rand_normal(c(3, 64), seed = 31)
  for (mode in c("affine", "mxfp4")) {
    w <- mlx_rand_normal(c(64, 96), seed = 32)  # (K, N), quantized along N
    q <- mlx_quantize(w, group_size = 32, bits = 4, mode = mode)
    y <- mlx_quantized_matmul(x, q$w_q, q$scales, q$biases, transpose = FALSE,
                              group_size = 32, bits = 4, mode = mode)
    expect_equal(mlx_shape(y), c(3L, 96L))
    w_hat <- ref_dequantize(q$w_q, q$scales, q$biases, 32, 4, mode)
    expect_lt(rel_err(as.matrix(y), as.matrix(x) %*% w_hat), 1e-5)
  }
})

test_that("batch dimensions broadcast; 1-d x gives a vector", {
  w <- mlx_rand_normal(c(40, 64), seed = 41)
  q <- mlx_quantize(w, group_size = 64, bits = 6)
  w_hat <- ref_dequantize(q$w_q, q$scales, q$biases, 64, 6, "affine")
  x3 <- array(rnorm(2 * 3 * 64), c(2, 3, 64))
  y <- mlx_quantized_matmul(x3, q$w_q, q$scales, q$biases, group_size = 64, bits = 6)
  expect_equal(mlx_shape(y), c(2L, 3L, 40L))
  ya <- as.array(y)
  for (b in 1:2) expect_lt(rel_err(ya[b, , ], x3[b, , ] %*% t(w_hat)), 1e-5)
  v <- rnorm(64)
  yv <- mlx_quantized_matmul(v, q$w_q, q$scales, q$biases, group_size = 64, bits = 6)
  expect_equal(mlx_shape(yv), 40L)
  expect_lt(rel_err(as.vector(yv), as.vector(w_hat %*% v)), 1e-5)
  # Batched weights: one weight matrix per batch entry.
  wb <- array(rnorm(2 * 40 * 64), c(2, 40, 64))
  qb <- mlx_quantize(wb, group_size = 32, bits = 4)
  yb <- as.array(mlx_quantized_matmul(x3, qb$w_q, qb$scales, qb$biases, group_size = 32))
  expect_equal(dim(yb), c(2L, 3L, 40L))
  for (b in 1:2) {
    wh <- ref_dequantize(as.array(qb$w_q)[b, , ], as.array(qb$scales)[b, , ],
                         as.array(qb$biases)[b, , ], 32, 4, "affine")
    expect_lt(rel_err(yb[b, , ], x3[b, , ] %*% t(wh)), 1e-5)
  }
})

test_that("output dtype follows x and the scales", {
  w <- mlx_rand_normal(c(32, 64), seed = 51)
  q <- mlx_quantize(w)
  xb <- mlx_rand_normal(c(2, 64), dtype = "bfloat16", seed = 52)
  yb <- mlx_quantized_matmul(xb, q$w_q, q$scales, q$biases)
  expect_equal(mlx_dtype(yb), "float32")  # bfloat16 x with float32 scales promotes to float32
  qh <- mlx_quantize(mlx_array(w, dtype = "float16"))
  xh <- mlx_array(xb, dtype = "float16")
  yh <- mlx_quantized_matmul(xh, qh$w_q, qh$scales, qh$biases)
  expect_equal(mlx_dtype(yh), "float16")
  w_hat <- ref_dequantize(qh$w_q, qh$scales, qh$biases, 64, 4, "affine")
  expect_lt(rel_err(as.matrix(yh), as.matrix(xh) %*% t(w_hat)), 3e-3)
  qf <- mlx_quantize(w, group_size = 32, mode = "mxfp8", bits = 8)
  expect_equal(mlx_dtype(mlx_quantized_matmul(xb, qf$w_q, qf$scales, group_size = 32,
                                              bits = 8, mode = "mxfp8")), "bfloat16")
})
