#' Default device, GPU availability and synchronisation
#'
#' `mlx_default_device()` returns the device that operations use when given
#' none (`"cpu"` unless changed); `mlx_default_device("gpu")` changes it (an
#' error if no GPU backend or GPU is available). `mlx_has_gpu()` says whether
#' this build of qmm has a usable GPU. `mlx_synchronize()` waits until all work
#' queued on a device's default stream (or on a given stream) has finished.
#'
#' Devices are named `"cpu"`, `"gpu"` (the first GPU) or `"gpu:N"`. Every
#' function with a `device` argument also accepts an `mlx_stream` from
#' [mlx_new_stream()].
#'
#' @param value Optional new default device: `"cpu"`, `"gpu"` or `"gpu:N"`.
#' @param device `"cpu"`, `"gpu"`, or an `mlx_stream`.
#' @return `mlx_default_device()`: the (new) default device name.
#'   `mlx_has_gpu()`: `TRUE` or `FALSE`. `mlx_synchronize()`: `NULL`, invisibly.
#' @export
#' @examples
#' mlx_default_device()
#' mlx_has_gpu()
#' mlx_default_device("cpu")
#' mlx_synchronize("cpu")
mlx_default_device <- function(value) {
  if (missing(value)) {
    return(cpp_default_device())
  }
  cpp_set_default_device(.string(value, "value"))
  cpp_default_device()
}

#' @rdname mlx_default_device
#' @export
mlx_has_gpu <- function() cpp_device_available("gpu")

#' @rdname mlx_default_device
#' @export
mlx_synchronize <- function(device = mlx_default_device()) {
  cpp_synchronize(.where(device))
  invisible(NULL)
}

#' Streams
#'
#' A stream is an ordered queue of work on one device: work on one stream runs
#' in order, work on different streams may overlap. Pass a stream as the
#' `device` argument of any operation to queue it there; its result lives on
#' the stream's device.
#'
#' @param device `"cpu"`, `"gpu"` or `"gpu:N"`.
#' @param x An `mlx_stream`.
#' @param ... Ignored.
#' @return `mlx_new_stream()`: an object of class `mlx_stream` (a list with
#'   `ptr`, `device` and `index`).
#' @export
#' @examples
#' s <- mlx_new_stream("cpu")
#' s
#' x <- mlx_rand_normal(c(4, 64))
#' w <- mlx_rand_normal(c(32, 64))
#' y <- mlx_quantized_matmul(x, w, device = s)
#' mlx_synchronize(s)
#' mlx_shape(y)
mlx_new_stream <- function(device = mlx_default_device()) {
  structure(cpp_new_stream(.string(device, "device")), class = "mlx_stream")
}

#' @rdname mlx_new_stream
#' @export
print.mlx_stream <- function(x, ...) {
  cat(format(x), "\n", sep = "")
  invisible(x)
}

#' @rdname mlx_new_stream
#' @export
format.mlx_stream <- function(x, ...) {
  sprintf("<mlx_stream device=%s index=%d>", x$device, x$index)
}

#' Threads of the CPU backend
#'
#' qmm's CPU kernels run on a pool of threads (by default the `QMM_NUM_THREADS`
#' environment variable, else the number of hardware threads).
#'
#' @param n Optional new number of threads (a positive integer).
#' @return The number of threads in use (after the change).
#' @export
#' @examples
#' qmm_num_threads()
qmm_num_threads <- function(n = NULL) {
  cpp_num_threads(.int_or_null(n, "n"))
}
