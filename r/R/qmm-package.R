#' qmm: MLX-compatible quantized matrix multiplication
#'
#' R bindings for the qmm C++ library. They compute MLX's quantized operations
#' ([mlx_quantize()], [mlx_dequantize()], [mlx_quantized_matmul()],
#' [mlx_gather_qmm()]) on weights stored exactly as MLX stores them, with the
#' names, arguments and defaults of the Rmlx documentation.
#'
#' Arrays are `mlx` objects ([mlx_array()], [mlx_rand_normal()]): handles to
#' qmm arrays that live on a device ("cpu" or "gpu"). Their shape ([mlx_shape()],
#' `dim()`) is the MLX shape; `as.array()`, `as.matrix()` and `as.vector()`
#' copy them back into R. Operations run asynchronously on a stream and return
#' at once; reading the data waits for it.
#'
#' Indices given to [mlx_gather_qmm()] are 1-based, as everywhere in R.
#'
#' @keywords internal
#' @useDynLib qmm, .registration = TRUE
"_PACKAGE"
