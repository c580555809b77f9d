#' Quantize a matrix
#'
#' Quantizes the last axis of `w` in groups of `group_size` elements with
#' `bits` bits per element, in MLX's storage format: `w_q` holds the codes
#' packed into uint32 words (least significant bits first), `scales` (and, in
#' affine mode, `biases`) hold one value per group.
#'
#' Modes (MLX's), with the legal group sizes and bits:
#' * `"affine"`: `w ~ scale * q + bias`, bits 2, 3, 4, 5, 6 or 8, group size
#'   32, 64 or 128; scales and biases have `w`'s dtype.
#' * `"mxfp4"`: FP4 (E2M1) elements with a shared power-of-two (E8M0, uint8)
#'   scale, bits 4, group size 32; no biases.
#' * `"mxfp8"`: FP8 (E4M3) elements, E8M0 scales, bits 8, group size 32.
#' * `"nvfp4"`: E2M1 elements with FP8 (E4M3, uint8) scales, bits 4, group
#'   size 16.
#'
#' The R defaults are `group_size = 64L, bits = 4L` (as documented for Rmlx),
#' so the fp modes need their group size spelled out (for example
#' `group_size = 32L` for mxfp4); `NULL` selects the mode's own default.
#'
#' @param w A floating-point `mlx` array (or R matrix/array, converted to
#'   float32) with at least 2 dimensions; the last one must be divisible by
#'   `group_size`.
#' @param group_size Elements sharing one scale (and bias); `NULL` for the
#'   mode's default.
#' @param bits Bits per element; `NULL` for the mode's default.
#' @param mode `"affine"`, `"mxfp4"`, `"mxfp8"` or `"nvfp4"`.
#' @param device `"cpu"`, `"gpu"`, or an `mlx_stream` ([mlx_new_stream()]).
#' @return A list with elements `w_q` (uint32, shape `(..., N, K * bits / 32)`),
#'   `scales` (shape `(..., N, K / group_size)`) and `biases` (same shape as
#'   `scales`; `NULL` for the fp modes).
#' @seealso [mlx_dequantize()], [mlx_quantized_matmul()]
#' @export
#' @examples
#' w <- mlx_rand_normal(c(128, 64))
#' quant <- mlx_quantize(w, group_size = 32, bits = 4)
#' mlx_shape(quant$w_q)      # 128 8: eight 4-bit codes per uint32 word
#' mlx_shape(quant$scales)   # 128 2: one scale per group of 32
#' fp4 <- mlx_quantize(w, group_size = 32L, bits = 4L, mode = "mxfp4")
#' is.null(fp4$biases)
mlx_quantize <- function(w, group_size = 64L, bits = 4L, mode = "affine",
                         device = mlx_default_device()) {
  w <- .operand(w, "w", "float32", .device_name(device))
  .check_mlx(w, "w")
  cpp_quantize(w, .int_or_null(group_size, "group_size"), .int_or_null(bits, "bits"),
               .string(mode, "mode"), .where(device))
}

#' Dequantize a matrix
#'
#' Expands packed weights from [mlx_quantize()] back to floating point:
#' `scale * q + bias` per group (affine) or the element value times the group
#' scale (fp modes).
#'
#' @inheritParams mlx_quantize
#' @param w The packed uint32 weights (`w_q` of [mlx_quantize()]).
#' @param scales The scales (`scales` of [mlx_quantize()]).
#' @param biases The biases (affine mode); `NULL` for the fp modes.
#' @param dtype Output dtype (`"float32"`, `"float16"`, `"bfloat16"`); `NULL`
#'   gives the scales' dtype in affine mode and bfloat16 in the fp modes, as
#'   in MLX.
#' @return A floating-point `mlx` array of shape `(..., N, K)`.
#' @seealso [mlx_quantize()]
#' @export
#' @examples
#' w <- mlx_rand_normal(c(128, 64))
#' quant <- mlx_quantize(w, group_size = 32, bits = 4)
#' w_hat <- mlx_dequantize(quant$w_q, quant$scales, quant$biases, group_size = 32, bits = 4)
#' max(abs(as.matrix(w_hat) - as.matrix(w)))   # at most half a quantization step
mlx_dequantize <- function(w, scales, biases = NULL, group_size = 64L, bits = 4L,
                           mode = "affine", device = mlx_default_device(), dtype = NULL) {
  mode <- .string(mode, "mode")
  where <- .device_name(device)
  w <- .operand(w, "w", "uint32", where)
  scales <- .operand(scales, "scales", if (mode == "affine") "float32" else "uint8", where)
  biases <- .operand(biases, "biases", "float32", where)
  .check_mlx(w, "w")
  .check_mlx(scales, "scales")
  if (!is.null(dtype)) dtype <- .string(dtype, "dtype")
  cpp_dequantize(w, scales, biases, .int_or_null(group_size, "group_size"),
                 .int_or_null(bits, "bits"), mode, dtype, .where(device))
}

#' Quantized matrix multiplication
#'
#' Computes `x %*% t(W)` (`transpose = TRUE`) or `x %*% W`
#' (`transpose = FALSE`), where `W = mlx_dequantize(w, scales, biases, ...)`,
#' without materialising `W`. Products are accumulated in float32.
#'
#' If `scales` is `NULL`, `w` must be an unquantized floating-point matrix
#' and is quantized first with `group_size`, `bits` and `mode` (as
#' [mlx_quantize()] would); otherwise `w` is the packed uint32 matrix and
#' `scales`/`biases` come from [mlx_quantize()]. Leading (batch) dimensions of
#' `x` and `w` broadcast as in matrix multiplication.
#'
#' The output dtype is that of `x` promoted with the scales' dtype (affine) or
#' `x`'s dtype (fp modes).
#'
#' @inheritParams mlx_quantize
#' @param x The input, an `mlx` array or an R matrix/array (converted to
#'   float32), of shape `(..., M, K)`.
#' @param w Either an unquantized matrix (quantized automatically when
#'   `scales` is `NULL`) or a pre-quantized uint32 matrix.
#' @param scales The quantization scales; required when `w` is already
#'   quantized.
#' @param biases The affine biases; `NULL` for the fp modes (and with
#'   `scales = NULL`).
#' @param transpose Multiply by the transposed weight (`x %*% t(W)`, `W` of
#'   shape `(N, K)`) or by the weight itself (`x %*% W`, `W` of shape `(K, N)`).
#' @return An `mlx` array of shape `(..., M, N)`.
#' @seealso [mlx_quantize()], [mlx_gather_qmm()]
#' @export
#' @examples
#' x <- mlx_rand_normal(c(4, 64)); w <- mlx_rand_normal(c(128, 64))
#' result <- mlx_quantized_matmul(x, w, group_size = 32)
#' quant <- mlx_quantize(w, group_size = 32, bits = 4)
#' result <- mlx_quantized_matmul(x, quant$w_q, quant$scales, quant$biases, group_size = 32)
#' mlx_shape(result)   # 4 128
#'
#' # The same product computed in R from the dequantized weights:
#' w_hat <- as.matrix(mlx_dequantize(quant$w_q, quant$scales, quant$biases, group_size = 32))
#' max(abs(as.matrix(result) - as.matrix(x) %*% t(w_hat)))
mlx_quantized_matmul <- function(x, w, scales = NULL, biases = NULL, transpose = TRUE,
                                 group_size = 64L, bits = 4L, mode = "affine",
                                 device = mlx_default_device()) {
  mode <- .string(mode, "mode")
  where <- .device_name(device)
  x <- .operand(x, "x", "float32", where)
  w <- .operand(w, "w", if (is.null(scales)) "float32" else "uint32", where)
  scales <- .operand(scales, "scales", if (mode == "affine") "float32" else "uint8", where)
  biases <- .operand(biases, "biases", "float32", where)
  .check_mlx(x, "x")
  .check_mlx(w, "w")
  cpp_quantized_matmul(x, w, scales, biases, .flag(transpose, "transpose"),
                       .int_or_null(group_size, "group_size"), .int_or_null(bits, "bits"),
                       mode, .where(device))
}

#' Quantized matrix multiplication with matrix-level gather
#'
#' The quantized counterpart of a gathered matmul, used by Mixture-of-Experts
#' layers: for every position `b` of the (broadcast) index shape,
#' `out[b, , ] = x[lhs_indices[b], , ] %*% t(W[rhs_indices[b], , ])`, where
#' `x[i, , ]` is the `i`-th matrix of `x` over its flattened batch (all but the
#' last two) dimensions, `W[j, , ]` likewise the `j`-th dequantized weight
#' matrix, and `%*% t()` becomes `%*%` with `transpose = FALSE`.
#'
#' Indices are **1-based**, as everywhere in R: `lhs_indices` take values in
#' `1..prod(batch dims of x)`, `rhs_indices` in `1..prod(batch dims of w)`.
#' They may be R integer (or whole-number double) vectors or arrays, or `mlx`
#' arrays of an integer dtype holding the same 1-based values. Their shapes
#' broadcast against each other and give the output's batch shape; a missing
#' index array means all batches in order. Out-of-range indices are an error.
#' With neither index array, the result is that of [mlx_quantized_matmul()].
#'
#' If `scales` is `NULL`, `w` is quantized first, as in
#' [mlx_quantized_matmul()].
#'
#' @inheritParams mlx_quantized_matmul
#' @param x The input, shape `(..., M, K)` (at least 2 dimensions).
#' @param w The weights, shape `(..., N, K * bits / 32)` packed (or an
#'   unquantized `(..., N, K)` matrix with `scales = NULL`).
#' @param scales The scales, with the same batch dimensions as `w`.
#' @param lhs_indices Optional 1-based indices into `x`'s batch.
#' @param rhs_indices Optional 1-based indices into `w`'s batch.
#' @param sorted_indices Whether `rhs_indices` are sorted ascending: a hint
#'   that may make the call faster and never changes its result.
#' @return An `mlx` array of shape `(<broadcast index shape>, M, N)`.
#' @seealso [mlx_quantized_matmul()], [mlx_quantize()]
#' @export
#' @examples
#' # 4 experts of shape (32, 64); 3 tokens, each routed to one expert.
#' experts <- mlx_rand_normal(c(4, 32, 64))
#' quant <- mlx_quantize(experts, group_size = 64, bits = 4)
#' x <- mlx_rand_normal(c(3, 1, 64))
#' y <- mlx_gather_qmm(x, quant$w_q, quant$scales, quant$biases,
#'                     rhs_indices = c(2L, 4L, 2L), group_size = 64, bits = 4)
#' mlx_shape(y)   # 3 1 32
#'
#' # Token 2 through expert 4, computed in R:
#' w4 <- as.array(mlx_dequantize(quant$w_q, quant$scales, quant$biases))[4, , ]
#' max(abs(as.array(y)[2, , ] - as.array(x)[2, , ] %*% t(w4)))
mlx_gather_qmm <- function(x, w, scales, biases = NULL, lhs_indices = NULL, rhs_indices = NULL,
                           transpose = TRUE, group_size = 64L, bits = 4L, mode = "affine",
                           sorted_indices = FALSE, device = mlx_default_device()) {
  if (missing(scales)) scales <- NULL
  mode <- .string(mode, "mode")
  where <- .device_name(device)
  x <- .operand(x, "x", "float32", where)
  w <- .operand(w, "w", if (is.null(scales)) "float32" else "uint32", where)
  scales <- .operand(scales, "scales", if (mode == "affine") "float32" else "uint8", where)
  biases <- .operand(biases, "biases", "float32", where)
  .check_mlx(x, "x")
  .check_mlx(w, "w")
  lhs <- .gather_indices(lhs_indices, "lhs_indices", "x", x, device)
  rhs <- .gather_indices(rhs_indices, "rhs_indices", "w", w, device)
  cpp_gather_qmm(x, w, scales, biases, lhs, rhs, .flag(transpose, "transpose"),
                 .int_or_null(group_size, "group_size"), .int_or_null(bits, "bits"), mode,
                 .flag(sorted_indices, "sorted_indices"), .where(device))
}
