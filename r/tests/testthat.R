library(testthat)
library(qmm)

test_check("qmm")
