# Internal helpers shared by the wrappers.

# The C++ side's view of a `device` argument: "cpu"/"gpu"/"gpu:N", or a stream's pointer.
.where <- function(device) {
  if (inherits(device, "mlx_stream")) {
    return(device$ptr)
  }
  if (is.character(device) && length(device) == 1L && !is.na(device)) {
    return(device)
  }
  stop("`device` must be \"cpu\", \"gpu\" or an mlx_stream from mlx_new_stream().",
       call. = FALSE)
}

# Device name of a `device` argument (a stream's device for a stream).
.device_name <- function(device) {
  if (inherits(device, "mlx_stream")) device$device else .where(device)
}

# NULL, or a single whole number as an R integer.
.int_or_null <- function(v, name) {
  if (is.null(v)) {
    return(NULL)
  }
  if (!is.numeric(v) || length(v) != 1L || is.na(v) || v != floor(v)) {
    stop(sprintf("`%s` must be a single integer or NULL.", name), call. = FALSE)
  }
  as.integer(v)
}

.flag <- function(v, name) {
  if (!is.logical(v) || length(v) != 1L || is.na(v)) {
    stop(sprintf("`%s` must be TRUE or FALSE.", name), call. = FALSE)
  }
  v
}

.string <- function(v, name) {
  if (!is.character(v) || length(v) != 1L || is.na(v)) {
    stop(sprintf("`%s` must be a single string.", name), call. = FALSE)
  }
  v
}

# An op operand: mlx arrays pass through unchanged (the core moves them to the op's device);
# R numeric/integer/logical vectors, matrices and arrays are converted with `dtype`.
.operand <- function(v, name, dtype, device) {
  if (is.null(v) || is_mlx(v)) {
    return(v)
  }
  if (is.numeric(v) || is.logical(v)) {
    return(mlx_array(v, dtype = dtype, device = device))
  }
  stop(sprintf("`%s` must be an mlx array or a numeric R vector, matrix or array.", name),
       call. = FALSE)
}

# Product of the batch (all but the last two) dimensions, NA when there are fewer than two.
.batch_count <- function(a) {
  s <- mlx_shape(a)
  if (length(s) < 2L) NA_real_ else prod(as.numeric(s[seq_len(length(s) - 2L)]))
}

# 1-based gather indices (R vector/array or mlx array) -> 0-based int32/int64 mlx array.
.gather_indices <- function(idx, name, operand, a, device) {
  if (is.null(idx)) {
    return(NULL)
  }
  if (is_mlx(idx)) {
    if (!mlx_dtype(idx) %in% c("int32", "int64", "uint32", "uint8")) {
      stop(sprintf(paste0("[gather_qmm] Got indices with invalid dtype. Indices must be ",
                          "integral but %s has dtype %s."), name, mlx_dtype(idx)),
           call. = FALSE)
    }
    idx <- as.array(idx)
  }
  if (!is.numeric(idx)) {
    stop(sprintf(paste0("[gather_qmm] %s must be an integer vector or array (1-based) or an ",
                        "mlx array of integers."), name), call. = FALSE)
  }
  batch <- .batch_count(a)
  bad <- is.na(idx) | idx != floor(idx) | idx < 1 | (!is.na(batch) & idx > batch)
  if (any(bad)) {
    i <- which(bad)[1L]
    range <- if (is.na(batch)) "[1, ...]" else sprintf("[1, %.0f]", batch)
    stop(sprintf(paste0("[gather_qmm] %s contains %s at position %d, outside the valid range %s ",
                        "of %s's batch (indices are 1-based; %s has shape (%s))."),
                 name, format(idx[i]), i, range, operand, operand,
                 paste(mlx_shape(a), collapse = ",")), call. = FALSE)
  }
  dtype <- if (length(idx) == 0L || max(idx) <= .Machine$integer.max) "int32" else "int64"
  mlx_array(idx - 1, dtype = dtype, device = .device_name(device))
}
