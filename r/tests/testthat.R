# R CMD check's entry to the shared library's suite; from the repository root, run
#   Rscript --vanilla -e 'testthat::test_dir("r/tests/testthat", stop_on_failure = TRUE)'
# (each stack has its own suite, e.g. r/stacks/r-keras/tests/testthat).
#
# Twins: julia/test/runtests.jl

testthat::test_dir("testthat", stop_on_failure = TRUE)
