#' Normally distributed mlx arrays
#'
#' Draws `Normal(mean, sd)` samples with qmm's seeded generator (the same
#' seed gives the same values on every machine). Without `seed`, the seed is
#' drawn from R's random number generator, so [set.seed()] makes the result
#' reproducible.
#'
#' @param shape The MLX shape, for example `c(4, 64)`.
#' @param dtype `"float32"` (default), `"float16"` or `"bfloat16"`.
#' @param mean,sd Mean and standard deviation.
#' @param seed Optional seed (a non-negative whole number).
#' @param device `"cpu"`, `"gpu"`, or an `mlx_stream`.
#' @return An `mlx` array.
#' @export
#' @examples
#' x <- mlx_rand_normal(c(4, 64))
#' mlx_shape(x)
#' w <- mlx_rand_normal(c(128, 64), dtype = "bfloat16", sd = 0.02)
#' mlx_dtype(w)
#' identical(as.array(mlx_rand_normal(3, seed = 1)), as.array(mlx_rand_normal(3, seed = 1)))
mlx_rand_normal <- function(shape, dtype = "float32", mean = 0, sd = 1, seed = NULL,
                            device = mlx_default_device()) {
  if (!is.numeric(shape) || anyNA(shape) || any(shape < 0) || any(shape != floor(shape))) {
    stop("`shape` must be a vector of non-negative integers.", call. = FALSE)
  }
  if (is.null(seed)) {
    seed <- floor(stats::runif(1) * 2^31) * 2^21 + floor(stats::runif(1) * 2^21)
  }
  if (!is.numeric(seed) || length(seed) != 1L || is.na(seed) || seed < 0 || seed != floor(seed)) {
    stop("`seed` must be a single non-negative whole number.", call. = FALSE)
  }
  if (!is.numeric(mean) || length(mean) != 1L || !is.numeric(sd) || length(sd) != 1L) {
    stop("`mean` and `sd` must be single numbers.", call. = FALSE)
  }
  cpp_random_normal(as.numeric(shape), .string(dtype, "dtype"), as.numeric(seed),
                    as.numeric(mean), as.numeric(sd), .where(device))
}
