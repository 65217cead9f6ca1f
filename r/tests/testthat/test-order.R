# Twins: none

test_that("epoch batches follow the order row and drop the partial batch", {
  order <- rbind(c(4L, 0L, 3L, 1L, 2L), c(2L, 1L, 0L, 4L, 3L))
  expect_identical(epoch_batches(order, 2L, 2L), rbind(c(2L, 1L), c(0L, 4L)))
  expect_identical(epoch_batches(order, 1L, 3L), rbind(c(4L, 0L, 3L)))
  expect_identical(epoch_batches(order, 1L, 5L), rbind(c(4L, 0L, 3L, 1L, 2L)))
})

test_that("the order must cover the epochs and the training samples", {
  order <- rbind(c(4L, 0L, 3L, 1L, 2L), c(2L, 1L, 0L, 4L, 3L))
  path <- write_npy_fixture(tempfile(fileext = ".npy"), order)
  expect_identical(read_order(path, 2L, 5L), order)
  expect_identical(read_order(path, 1L, 5L), order)  # more epochs drawn than run
  expect_error(read_order(path, 3L, 5L), "has shape \\(2, 5\\); need at least 3 epochs of 5 indices")
  expect_error(read_order(path, 2L, 6L), "need at least 2 epochs of 6 indices")
  expect_error(read_order(write_npy_fixture(tempfile(), 0:4), 1L, 5L), "has shape \\(5\\)")
})

test_that("the order NumPy draws reads as its permutations", {
  skip_without_python()
  path <- tempfile(fileext = ".npy")
  run_python(c("import sys, numpy as np", "from dlrosetta.order import write_epoch_order",
               "write_epoch_order(sys.argv[1], 7, 3, 5)"), path)
  order <- read_order(path, 3L, 7L)
  expect_true(is.integer(order))
  for (e in 1:3) expect_setequal(order[e, ], 0:6)
})
