# R profile of the r_check test: an empty local package repository (made by check.cmake), so
# that R CMD check's dependency-cycle lookup never waits on the network.
options(repos = c(CRAN = paste0("file://", Sys.getenv("QMM_R_EMPTY_REPO"))))
