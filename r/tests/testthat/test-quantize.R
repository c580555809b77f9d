test_that("mlx_quantize() returns list(w_q, scales, biases) with MLX's shapes", {
  w <- mlx_rand_normal(c(128, 64))
  quant <- mlx_quantize(w, group_size = 64L, bits = 4L, mode = "affine")
  expect_named(quant, c("w_q", "scales", "biases"))
  expect_s3_class(quant$w_q, "mlx")
  expect_s3_class(quant$scales, "mlx")
  expect_s3_class(quant$biases, "mlx")
  expect_equal(mlx_shape(quant$w_q), c(128L, 8L))
  expect_equal(mlx_shape(quant$scales), c(128L, 1L))
  expect_equal(mlx_shape(quant$biases), c(128L, 1L))
  expect_equal(mlx_dtype(quant$w_q), "uint32")
  expect_equal(mlx_dtype(quant$scales), "float32")
  w_recon <- mlx_dequantize(quant$w_q, quant$scales, quant$biases,
                            group_size = 64L, bits = 4L, mode = "affine")
  expect_equal(mlx_shape(w_recon), c(128L, 64L))
  # Defaults are group_size = 64, bits = 4.
  expect_identical(as.array(mlx_quantize(w)$w_q), as.array(quant$w_q))
})

test_that("every mode, bit width and group size: dequantize equals R's decoding of the bits", {
  specs <- all_specs()
  w <- mlx_rand_normal(c(12, 256), seed = 11)
  wr <- as.matrix(w)
  for (i in seq_len(nrow(specs))) {
    gs <- specs$group_size[i]
    bits <- specs$bits[i]
    mode <- specs$mode[i]
    info <- sprintf("mode=%s group_size=%d bits=%d", mode, gs, bits)
    q <- mlx_quantize(w, group_size = gs, bits = bits, mode = mode)
    expect_equal(mlx_shape(q$w_q), c(12L, 256L * bits / 32L), info = info)
    expect_equal(mlx_shape(q$scales), c(12L, 256L / gs), info = info)
    if (mode == "affine") {
      expect_equal(mlx_shape(q$biases), mlx_shape(q$scales), info = info)
    } else {
      expect_null(q$biases, info = info)
      expect_equal(mlx_dtype(q$scales), "uint8", info = info)
    }
    ref <- ref_dequantize(q$w_q, q$scales, q$biases, gs, bits, mode)
    deq <- as.matrix(mlx_dequantize(q$w_q, q$scales, q$biases, group_size = gs, bits = bits,
                                    mode = mode, dtype = "float32"))
    expect_equal(deq, ref, tolerance = 1e-6, info = info)
    if (mode == "affine") {
      # Each element is within one step (|scale|) of the original: MLX rounds to nearest after
      # refitting the scale so that the larger-magnitude extreme is exact, which can push the
      # other extreme up to about one step away.
      s <- abs(as.matrix(q$scales))[, (seq_len(256) - 1) %/% gs + 1]
      expect_true(all(abs(deq - wr) <= s * (1 + 1e-5)), info = info)
      expect_lt(mean(abs(deq - wr) / s), 0.3)
      expect_lt(rel_err(deq, wr), c(`2` = 0.6, `3` = 0.3, `4` = 0.15, `5` = 0.07,
                                     `6` = 0.04, `8` = 0.01)[[as.character(bits)]])
    } else {
      expect_lt(rel_err(deq, wr), if (mode == "mxfp8") 0.08 else 0.25)
    }
  }
})

test_that("fp-mode dequantize defaults to bfloat16, affine to the scales' dtype", {
  w <- mlx_rand_normal(c(8, 64), seed = 2)
  q <- mlx_quantize(w, group_size = 32, bits = 4, mode = "mxfp4")
  expect_equal(mlx_dtype(mlx_dequantize(q$w_q, q$scales, group_size = 32, mode = "mxfp4")),
               "bfloat16")
  qb <- mlx_quantize(mlx_array(w, dtype = "bfloat16"))
  expect_equal(mlx_dtype(qb$scales), "bfloat16")
  expect_equal(mlx_dtype(mlx_dequantize(qb$w_q, qb$scales, qb$biases)), "bfloat16")
  # NULL group_size/bits select the mode's defaults (32/4 for mxfp4).
  qn <- mlx_quantize(w, group_size = NULL, bits = NULL, mode = "mxfp4")
  expect_identical(as.array(qn$w_q), as.array(q$w_q))
})

test_that("batched weights quantize row-wise along the last axis", {
  w3 <- array(rnorm(3 * 16 * 64), c(3, 16, 64))
  q <- mlx_quantize(w3, group_size = 32, bits = 8)
  expect_equal(mlx_shape(q$w_q), c(3L, 16L, 16L))
  deq <- as.array(mlx_dequantize(q$w_q, q$scales, q$biases, group_size = 32, bits = 8))
  for (e in 1:3) {
    ref <- ref_dequantize(as.array(q$w_q)[e, , ], as.array(q$scales)[e, , ],
                          as.array(q$biases)[e, , ], 32, 8, "affine")
    expect_equal(deq[e, , ], ref, tolerance = 1e-6)
    expect_lt(max(abs(deq[e, , ] - w3[e, , ])), 0.05)
  }
})

test_that("R matrices are accepted and packed words round-trip through R", {
  wr <- matrix(rnorm(16 * 64), 16)
  q <- mlx_quantize(wr, group_size = 32, bits = 4)
  words <- as.matrix(q$w_q)
  expect_true(all(words >= 0 & words < 2^32 & words == floor(words)))
  deq <- mlx_dequantize(words, as.matrix(q$scales), as.matrix(q$biases), group_size = 32)
  expect_equal(as.matrix(deq),
               as.matrix(mlx_dequantize(q$w_q, q$scales, q$biases, group_size = 32)))
})
