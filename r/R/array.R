#' Create an mlx array from R data
#'
#' Copies an R vector, matrix or array onto a device as an `mlx` array. The
#' MLX shape equals the R dimensions: `mlx_array(m)` of an `m` with
#' `dim(m) == c(4, 64)` has shape `(4, 64)`, and element `[i, j]` is the same
#' number on both sides (R's column-major storage is converted at the
#' boundary).
#'
#' R has no float16, bfloat16 or unsigned types, so those dtypes exist only on
#' the mlx side: values are rounded to the nearest representable number
#' (floating dtypes) or must be whole numbers in range (integer dtypes).
#'
#' @param x A numeric, integer or logical vector, matrix or array, or an `mlx`
#'   array (then `mlx_array()` returns a copy converted to `dtype` and/or moved
#'   to `device`).
#' @param dim Optional dimensions (MLX shape) for an R vector, filled in R's
#'   column-major order as by [array()]; `prod(dim)` must equal `length(x)`.
#'   Defaults to `dim(x)`, or `length(x)` for a plain vector.
#' @param dtype One of `"float32"`, `"float16"`, `"bfloat16"`, `"int32"`,
#'   `"int64"`, `"uint32"`, `"uint8"`. Defaults to `"int32"` for integer and
#'   logical data and `"float32"` otherwise (for an `mlx` `x`: its own dtype).
#' @param device `"cpu"`, `"gpu"` (or `"gpu:N"`), or an `mlx_stream` from
#'   [mlx_new_stream()] (the array goes to the stream's device).
#' @return An `mlx` array.
#' @seealso [as.array.mlx()], [mlx_shape()], [mlx_rand_normal()]
#' @export
#' @examples
#' m <- matrix(1:6, nrow = 2)
#' a <- mlx_array(m, dtype = "float32")
#' mlx_shape(a)          # 2 3, the same as dim(m)
#' as.matrix(a)[2, 3]    # 6, the same element as m[2, 3]
#' v <- mlx_array(c(0.5, 1.5, 2.5), dtype = "bfloat16")
#' mlx_dtype(v)
mlx_array <- function(x, dim = NULL, dtype = NULL, device = mlx_default_device()) {
  if (is_mlx(x)) {
    if (!is.null(dim)) {
      stop("`dim` applies to R data only; use mlx_reshape() for an mlx array.", call. = FALSE)
    }
    if (!is.null(dtype)) dtype <- .string(dtype, "dtype")
    return(cpp_array_convert(x, dtype, .where(device)))
  }
  if (!(is.numeric(x) || is.logical(x)) || is.object(x) && !is.array(x)) {
    stop("`x` must be a numeric, integer or logical vector, matrix or array.", call. = FALSE)
  }
  if (is.null(dim)) {
    dim <- if (is.null(base::dim(x))) length(x) else base::dim(x)
  }
  if (!is.numeric(dim) || anyNA(dim) || any(dim < 0) || any(dim != floor(dim))) {
    stop("`dim` must be a vector of non-negative integers.", call. = FALSE)
  }
  if (prod(dim) != length(x)) {
    stop(sprintf("`x` has %d elements but `dim` (%s) needs %.0f.", length(x),
                 paste(dim, collapse = ", "), prod(dim)), call. = FALSE)
  }
  if (is.null(dtype)) {
    dtype <- if (is.integer(x) || is.logical(x)) "int32" else "float32"
  }
  data <- x
  attributes(data) <- NULL
  cpp_array_from_r(data, as.numeric(dim), .string(dtype, "dtype"), .where(device))
}

#' Is an object an mlx array?
#'
#' @param x Any R object.
#' @return `TRUE` for an `mlx` array, `FALSE` otherwise.
#' @export
#' @examples
#' is_mlx(mlx_array(1:3))
#' is_mlx(1:3)
is_mlx <- function(x) inherits(x, "mlx")

.check_mlx <- function(x, name = "x") {
  if (!is_mlx(x)) stop(sprintf("`%s` must be an mlx array.", name), call. = FALSE)
  invisible(x)
}

#' Shape, dtype and device of an mlx array
#'
#' `mlx_shape()` (and `dim()`) give the MLX shape as an integer vector,
#' `mlx_dtype()` the MLX dtype name (for example `"float32"`, `"uint32"`),
#' `mlx_device()` the device the array lives on (`"cpu"` or `"gpu"`).
#' `length()` is the number of elements.
#'
#' @param x An `mlx` array.
#' @return `mlx_shape()`, `dim()`: an integer vector (`integer(0)` for a 0-d
#'   array). `mlx_dtype()`, `mlx_device()`: a string. `length()`: a number.
#' @export
#' @examples
#' w <- mlx_rand_normal(c(128, 64))
#' mlx_shape(w)
#' dim(w)
#' mlx_dtype(w)
#' q <- mlx_quantize(w)
#' mlx_shape(q$w_q)   # 128 8: eight 4-bit values per uint32
#' mlx_dtype(q$w_q)
mlx_shape <- function(x) {
  .check_mlx(x)
  as.integer(cpp_array_shape(x))
}

#' @rdname mlx_shape
#' @export
mlx_dtype <- function(x) {
  .check_mlx(x)
  cpp_array_dtype(x)
}

#' @rdname mlx_shape
#' @export
mlx_device <- function(x) {
  .check_mlx(x)
  cpp_array_device(x)
}

#' @rdname mlx_shape
#' @export
dim.mlx <- function(x) mlx_shape(x)

#' @rdname mlx_shape
#' @export
length.mlx <- function(x) prod(cpp_array_shape(x))

#' Reshape an mlx array
#'
#' Gives the array a new shape with the same number of elements, reading the
#' elements in MLX (row-major, C) order, as `reshape` does in MLX and numpy.
#' This is not R's `dim<-`, which refills in column-major order.
#'
#' @param x An `mlx` array.
#' @param shape The new shape; one entry may be `-1` (inferred).
#' @return An `mlx` array (a view when `x` is contiguous).
#' @export
#' @examples
#' a <- mlx_array(matrix(1:6, nrow = 2, byrow = TRUE))   # rows 1 2 3 / 4 5 6
#' as.vector(mlx_reshape(a, 6))                         # 1 2 3 4 5 6
#' mlx_shape(mlx_reshape(a, c(3, -1)))
mlx_reshape <- function(x, shape) {
  .check_mlx(x)
  if (!is.numeric(shape) || anyNA(shape)) stop("`shape` must be a numeric vector.", call. = FALSE)
  cpp_array_reshape(x, as.numeric(shape))
}

#' Copy an mlx array back into R
#'
#' `as.array()` returns an R array whose `dim()` is the MLX shape, with
#' `result[i, j, ...]` equal to the MLX element `[i-1, j-1, ...]`.
#' `as.matrix()` does the same for 2-d arrays (others become a one-column
#' matrix, as base R's `as.matrix()` does). `as.vector()` drops the dimensions
#' in R's column-major order, i.e. it equals `as.vector(as.array(x))`.
#'
#' int32 and uint8 arrays come back as R integers; all other dtypes (float32,
#' float16, bfloat16, uint32, int64) as doubles, exactly (int64 up to 2^53).
#' Reading waits for the computation that produces the array.
#'
#' @param x An `mlx` array.
#' @param mode Passed to [base::as.vector()].
#' @param ... Ignored.
#' @return An R array, matrix or vector.
#' @name as.array.mlx
#' @examples
#' x <- mlx_rand_normal(c(2, 3))
#' as.array(x)
#' as.matrix(x)
#' as.vector(x)
#' q <- mlx_quantize(mlx_rand_normal(c(4, 64)))
#' as.matrix(q$w_q)   # packed uint32 words, as doubles
NULL

#' @rdname as.array.mlx
#' @export
as.array.mlx <- function(x, ...) {
  v <- cpp_array_to_r(x)
  shape <- mlx_shape(x)
  if (length(shape) == 0L) {
    return(v)
  }
  dim(v) <- shape
  v
}

#' @rdname as.array.mlx
#' @export
as.matrix.mlx <- function(x, ...) {
  a <- as.array.mlx(x)
  if (length(dim(a)) == 2L) a else array(a, c(length(a), 1L))
}

#' @rdname as.array.mlx
#' @export
as.vector.mlx <- function(x, mode = "any") {
  as.vector(cpp_array_to_r(x), mode = mode)
}

#' Print an mlx array
#'
#' Prints the shape, dtype and device, then the values in MLX's layout (rows
#' of the last two axes; long axes elided).
#'
#' @param x An `mlx` array.
#' @param ... Ignored.
#' @return `print()`: `x`, invisibly. `format()`: a one-line description.
#' @export
#' @examples
#' x <- mlx_array(matrix(1:6, nrow = 2), dtype = "float32")
#' x
#' format(x)
print.mlx <- function(x, ...) {
  cat(format(x), "\n", sep = "")
  if (cpp_array_is_valid(x)) cat(cpp_array_to_string(x), "\n", sep = "")
  invisible(x)
}

#' @rdname print.mlx
#' @export
format.mlx <- function(x, ...) {
  if (!cpp_array_is_valid(x)) {
    return("<mlx array, released>")
  }
  sprintf("<mlx array (%s) %s on %s>", paste(mlx_shape(x), collapse = ", "),
          mlx_dtype(x), mlx_device(x))
}
