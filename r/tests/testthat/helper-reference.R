# R-side reference math: decodes MLX's storage format from the raw words and scales, so the
# tests check qmm against arithmetic done in R rather than against qmm itself.

# Codes of one row-block: `wq` is an R matrix of uint32 words (as doubles), rows x words.
# Element j (0-based) occupies bits [j*bits, (j+1)*bits) of the row's little-endian bit stream.
unpack_codes <- function(wq, bits) {
  wq <- as.matrix(wq)
  k <- ncol(wq) * 32 / bits
  out <- matrix(0, nrow(wq), k)
  for (j in seq_len(k) - 1) {
    pos <- j * bits
    w0 <- pos %/% 32
    off <- pos %% 32
    v <- (wq[, w0 + 1] %/% 2^off) %% 2^bits
    if (off + bits > 32) {
      v <- v + (wq[, w0 + 2] %% 2^(off + bits - 32)) * 2^(32 - off)
    }
    out[, j + 1] <- v
  }
  out
}

# E2M1 (fp4) code -> value; bit 3 is the sign.
e2m1 <- function(code) {
  lut <- c(0, 0.5, 1, 1.5, 2, 3, 4, 6)
  ifelse(code >= 8, -1, 1) * lut[(code %% 8) + 1]
}

# E4M3 (fp8, "fn") byte -> value.
e4m3 <- function(byte) {
  sign <- ifelse(byte >= 128, -1, 1)
  e <- (byte %/% 8) %% 16
  m <- byte %% 8
  sign * ifelse(e == 0, m / 8 * 2^-6, (1 + m / 8) * 2^(e - 7))
}

# E8M0 scale byte -> 2^(s - 127).
e8m0 <- function(byte) 2^(byte - 127)

# Dequantizes a 2-d quantized matrix in R (rows x K), from the packed words and scales.
ref_dequantize <- function(w_q, scales, biases, group_size, bits, mode) {
  q <- unpack_codes(as.matrix(w_q), bits)
  s <- as.matrix(scales)
  g <- (seq_len(ncol(q)) - 1) %/% group_size + 1
  if (mode == "affine") {
    b <- as.matrix(biases)
    return(s[, g, drop = FALSE] * q + b[, g, drop = FALSE])
  }
  elem <- if (mode == "mxfp8") e4m3(q) else e2m1(q)
  scale <- if (mode == "nvfp4") e4m3(s) else e8m0(s)
  matrix(elem, nrow(q)) * scale[, g, drop = FALSE]
}

rel_err <- function(a, b) sqrt(sum((a - b)^2)) / sqrt(sum(b^2))

# Every legal (mode, group size, bits) combination.
all_specs <- function() {
  affine <- expand.grid(group_size = c(32L, 64L, 128L), bits = c(2L, 3L, 4L, 5L, 6L, 8L))
  affine$mode <- "affine"
  fp <- data.frame(group_size = c(32L, 32L, 16L), bits = c(4L, 8L, 4L),
                   mode = c("mxfp4", "mxfp8", "nvfp4"))
  rbind(affine, fp)
}
