# Twins: tests/test_profile_mode.py

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

test_that("profile blocks take epoch 1's batches cyclically, as Python's do", {
  order <- rbind(0:11, 11:0)
  rows <- epoch_batches(order, 1L, 4L)  # 3 batches
  blocks <- profile_blocks(order, 4L, 2L)
  expect_named(blocks, c("warm_up", "unprofiled", "profiled"))
  expect_identical(blocks$warm_up, rows[c(1, 2), ])
  expect_identical(blocks$unprofiled, rows[c(3, 1), ])
  expect_identical(blocks$profiled, rows[c(2, 3), ])
  expect_identical(profile_blocks(order, 4L, 1L)$profiled, rows[3, , drop = FALSE])
  expect_error(profile_blocks(order, 4L, 0L), "steps >= 1")
  expect_error(profile_blocks(order, 16L, 1L), "0 batches of 16")
})

test_that("profile blocks are the rows Python takes", {
  skip_without_python()
  path <- tempfile(fileext = ".npy")
  out <- run_python(c("import json, sys", "from dlrosetta.order import profile_blocks, read_order, write_epoch_order",
                      "write_epoch_order(sys.argv[1], 30, 1, 9)",
                      "print(json.dumps([b.tolist() for b in profile_blocks(read_order(sys.argv[1], 1, 30), 4, 3)]))"),
                    path)
  python <- jsonlite::fromJSON(out)
  blocks <- profile_blocks(read_order(path, 1L, 30L), 4L, 3L)
  for (k in 1:3) expect_identical(unname(blocks[[k]]), python[k, , ])
})
