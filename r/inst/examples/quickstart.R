# The R quick start of the README (run by ctest as r_example).
library(qmm)

x <- mlx_rand_normal(c(4, 64)); w <- mlx_rand_normal(c(128, 64))
result <- mlx_quantized_matmul(x, w, group_size = 32)
quant <- mlx_quantize(w, group_size = 32, bits = 4)
result <- mlx_quantized_matmul(x, quant$w_q, quant$scales, quant$biases, group_size = 32)

# The same product in R, from the dequantized weights.
w_hat <- as.matrix(mlx_dequantize(quant$w_q, quant$scales, quant$biases, group_size = 32))
expected <- as.matrix(x) %*% t(w_hat)
err <- norm(as.matrix(result) - expected, "F") / norm(expected, "F")
cat(sprintf("result: %s %s, relative error vs R: %.1e\n",
            paste(mlx_shape(result), collapse = " x "), mlx_dtype(result), err))

# Mixture of experts: 8 experts, each of 4 tokens routed to one (1-based indices).
experts <- mlx_quantize(mlx_rand_normal(c(8, 128, 64)), group_size = 64, bits = 4)
tokens <- mlx_rand_normal(c(4, 1, 64))
y <- mlx_gather_qmm(tokens, experts$w_q, experts$scales, experts$biases,
                    rhs_indices = c(3L, 8L, 1L, 3L))
print(y)
stopifnot(err < 1e-5, identical(mlx_shape(y), c(4L, 1L, 128L)))
