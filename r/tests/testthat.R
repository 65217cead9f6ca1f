# R CMD check's entry to the suite; from the repository root, run
#   Rscript -e 'testthat::test_dir("r/tests/testthat", stop_on_failure = TRUE)'
testthat::test_dir("testthat", stop_on_failure = TRUE)
