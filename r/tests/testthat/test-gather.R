# Experts: E weight matrices of shape (N, K), quantized; their dequantized values in R.
make_experts <- function(E, N, K, gs = 32, bits = 4, mode = "affine", seed = 1) {
  w <- mlx_rand_normal(c(E, N, K), seed = seed)
  q <- mlx_quantize(w, group_size = gs, bits = bits, mode = mode)
  wq <- as.array(q$w_q)
  sc <- as.array(q$scales)
  bi <- if (is.null(q$biases)) NULL else as.array(q$biases)
  deq <- lapply(seq_len(E), function(e) {
    ref_dequantize(wq[e, , , drop = TRUE], sc[e, , , drop = TRUE],
                   if (is.null(bi)) NULL else bi[e, , , drop = TRUE], gs, bits, mode)
  })
  list(w = w, q = q, deq = deq, gs = gs, bits = bits, mode = mode)
}

test_that("rhs_indices are 1-based and match an R loop", {
  ex <- make_experts(E = 4, N = 32, K = 64)
  x <- array(rnorm(3 * 2 * 64), c(3, 2, 64))
  idx <- c(2L, 4L, 1L)
  y <- mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = idx,
                      group_size = 32, bits = 4)
  expect_equal(mlx_shape(y), c(3L, 2L, 32L))
  ya <- as.array(y)
  for (b in seq_along(idx)) {
    expect_lt(rel_err(ya[b, , ], x[b, , ] %*% t(ex$deq[[idx[b]]])), 1e-5)
  }
  # Whole-number doubles and mlx integer arrays holding the same 1-based values agree.
  y2 <- mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = c(2, 4, 1),
                       group_size = 32, bits = 4)
  y3 <- mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = mlx_array(idx),
                       group_size = 32, bits = 4)
  y4 <- mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases,
                       rhs_indices = mlx_array(idx, dtype = "uint32"), group_size = 32, bits = 4)
  expect_identical(as.array(y2), ya)
  expect_identical(as.array(y3), ya)
  expect_identical(as.array(y4), ya)
})

test_that("lhs and rhs indices together, and broadcasting index arrays", {
  ex <- make_experts(E = 3, N = 16, K = 64, gs = 64, bits = 8, seed = 2)
  x <- array(rnorm(2 * 3 * 64), c(2, 3, 64))  # two inputs of shape (3, 64)
  lhs <- c(2L, 1L, 2L, 2L)
  rhs <- c(1L, 3L, 3L, 2L)
  y <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, lhs_indices = lhs,
                               rhs_indices = rhs, group_size = 64, bits = 8))
  expect_equal(dim(y), c(4L, 3L, 16L))
  for (b in 1:4) expect_lt(rel_err(y[b, , ], x[lhs[b], , ] %*% t(ex$deq[[rhs[b]]])), 1e-5)

  # Index arrays with dimensions: lhs of shape (2, 1) and rhs of shape (3) broadcast to (2, 3).
  lhs2 <- matrix(c(2L, 1L), ncol = 1)
  rhs2 <- c(3L, 1L, 2L)
  yb <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, lhs_indices = lhs2,
                                rhs_indices = rhs2, group_size = 64, bits = 8))
  expect_equal(dim(yb), c(2L, 3L, 3L, 16L))
  for (i in 1:2) for (j in 1:3) {
    expect_lt(rel_err(yb[i, j, , ], x[lhs2[i, 1], , ] %*% t(ex$deq[[rhs2[j]]])), 1e-5)
  }
})

test_that("flat indices run over several batch dimensions in MLX (row-major) order", {
  ex <- make_experts(E = 2, N = 8, K = 32, seed = 3)
  x <- array(rnorm(2 * 3 * 1 * 32), c(2, 3, 1, 32))  # batch (2, 3): flat index 1..6
  lhs <- c(1L, 2L, 4L, 6L)
  y <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, lhs_indices = lhs,
                               rhs_indices = c(1L, 2L, 1L, 2L), group_size = 32, bits = 4))
  rhs <- c(1L, 2L, 1L, 2L)
  for (b in 1:4) {
    f <- lhs[b] - 1
    xi <- x[f %/% 3 + 1, f %% 3 + 1, , ]  # MLX flat batch index f = i0 * 3 + i1
    expect_lt(rel_err(y[b, 1, ], as.vector(ex$deq[[rhs[b]]] %*% xi)), 1e-5)
  }
})

test_that("every mode, transpose = FALSE, sorted_indices and NULL indices", {
  for (spec in list(list("affine", 32, 3), list("mxfp4", 32, 4), list("mxfp8", 32, 8),
                    list("nvfp4", 16, 4))) {
    mode <- spec[[1]]
    gs <- spec[[2]]
    bits <- spec[[3]]
    ex <- make_experts(E = 3, N = 32, K = 64, gs = gs, bits = bits, mode = mode, seed = 4)
    x <- array(rnorm(5 * 1 * 64), c(5, 1, 64))
    idx <- c(3L, 1L, 2L, 3L, 1L)
    y <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = idx,
                                 group_size = gs, bits = bits, mode = mode))
    for (b in 1:5) {
      expect_lt(rel_err(y[b, 1, ], as.vector(ex$deq[[idx[b]]] %*% x[b, 1, ])), 1e-5)
    }
    # sorted_indices is only a hint: unsorted indices still give the right answer.
    ys <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = idx,
                                  group_size = gs, bits = bits, mode = mode,
                                  sorted_indices = TRUE))
    expect_equal(ys, y, tolerance = 1e-6)
    srt <- sort(idx)
    yo <- as.array(mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, rhs_indices = srt,
                                  group_size = gs, bits = bits, mode = mode,
                                  sorted_indices = TRUE))
    for (b in 1:5) {
      expect_lt(rel_err(yo[b, 1, ], as.vector(ex$deq[[srt[b]]] %*% x[b, 1, ])), 1e-5)
    }
  }
  # transpose = FALSE: experts of shape (K, N), x %*% W.
  w <- mlx_rand_normal(c(2, 64, 32), seed = 5)
  q <- mlx_quantize(w, group_size = 32, bits = 4)
  x <- array(rnorm(3 * 2 * 64), c(3, 2, 64))
  idx <- c(2L, 2L, 1L)
  y <- as.array(mlx_gather_qmm(x, q$w_q, q$scales, q$biases, rhs_indices = idx,
                               transpose = FALSE, group_size = 32, bits = 4))
  for (b in 1:3) {
    wh <- ref_dequantize(as.array(q$w_q)[idx[b], , ], as.array(q$scales)[idx[b], , ],
                         as.array(q$biases)[idx[b], , ], 32, 4, "affine")
    expect_lt(rel_err(y[b, , ], x[b, , ] %*% wh), 1e-5)
  }
  # No indices: plain (batched) quantized_matmul.
  ex <- make_experts(E = 2, N = 8, K = 32, seed = 6)
  x2 <- mlx_rand_normal(c(2, 3, 32), seed = 7)
  expect_equal(as.array(mlx_gather_qmm(x2, ex$q$w_q, ex$q$scales, ex$q$biases, group_size = 32)),
               as.array(mlx_quantized_matmul(x2, ex$q$w_q, ex$q$scales, ex$q$biases,
                                             group_size = 32)))
})

test_that("scales = NULL quantizes the experts first", {
  w <- mlx_rand_normal(c(3, 16, 64), seed = 8)
  x <- mlx_rand_normal(c(2, 1, 64), seed = 9)
  q <- mlx_quantize(w, group_size = 64, bits = 4)
  a <- mlx_gather_qmm(x, w, NULL, rhs_indices = c(3L, 2L))
  b <- mlx_gather_qmm(x, q$w_q, q$scales, q$biases, rhs_indices = c(3L, 2L))
  expect_equal(as.array(a), as.array(b))
  expect_equal(as.array(mlx_gather_qmm(x, w, rhs_indices = c(3L, 2L))), as.array(b))
})

test_that("bad indices are R errors in 1-based terms", {
  ex <- make_experts(E = 4, N = 8, K = 32, seed = 10)
  x <- mlx_rand_normal(c(2, 1, 32))
  g <- function(...) {
    mlx_gather_qmm(x, ex$q$w_q, ex$q$scales, ex$q$biases, group_size = 32, ...)
  }
  expect_error(g(rhs_indices = c(0L, 1L)), "rhs_indices contains 0 at position 1, outside the valid range \\[1, 4\\]")
  expect_error(g(rhs_indices = c(1L, 5L)), "rhs_indices contains 5 at position 2")
  expect_error(g(rhs_indices = mlx_array(c(1L, 5L))), "rhs_indices contains 5")
  expect_error(g(rhs_indices = c(1.5, 2)), "rhs_indices contains 1.5")
  expect_error(g(rhs_indices = c(NA, 2L)), "rhs_indices contains NA")
  expect_error(g(lhs_indices = c(1L, 3L)), "lhs_indices contains 3 at position 2.*\\[1, 2\\]")
  expect_error(g(rhs_indices = c("a", "b")), "integer vector or array")
  expect_error(g(rhs_indices = mlx_array(c(1, 2))), "Indices must be integral")
  expect_error(g(rhs_indices = c(1L, 2L, 3L)), "cannot be broadcast")
})
