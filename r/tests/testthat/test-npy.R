# Twins: tests/test_rbridge.py (R reads NumPy's own files), julia/test/test_npy.jl.

test_that("a 3-D float32 file reads with NumPy's indexing", {
  x <- array(seq(0, 23) / 8, dim = c(2, 3, 4))
  path <- write_npy_fixture(tempfile(fileext = ".npy"), x)
  y <- read_npy(path)
  expect_identical(dim(y), c(2L, 3L, 4L))
  expect_identical(y, x)
  # The data (the file's last 24 values) are row-major: NumPy's [i, j, k] is value
  # i*12 + j*4 + k (0-based), which R indexes as [i+1, j+1, k+1].
  data <- utils::tail(readBin(path, "double", n = file.size(path) / 4, size = 4, endian = "little"), 24)
  expect_identical(data[1 * 12 + 2 * 4 + 3 + 1], y[2, 3, 4])
  expect_identical(data[1 * 12 + 1], y[2, 1, 1])
})

test_that("int32 matrices and vectors keep their type and shape", {
  m <- matrix(c(-5L, 0L, 7L, .Machine$integer.max, 1L, 2L), nrow = 2)
  expect_identical(read_npy(write_npy_fixture(tempfile(), m)), m)
  v <- c(3L, 1L, 2L)
  expect_identical(read_npy(write_npy_fixture(tempfile(), v)), v)
})

test_that("files NumPy wrote read identically", {
  skip_without_keras()
  np <- reticulate::import("numpy", convert = FALSE)
  path <- tempfile(fileext = ".npy")
  values <- np$divide(np$arange(60L, dtype = "float32"), np$float32(7))
  np$save(path, values$reshape(c(3L, 4L, 5L)))
  expected <- aperm(array(as.numeric(reticulate::py_to_r(values)), dim = c(5, 4, 3)))
  expect_identical(read_npy(path), expected)
  np$save(path, np$arange(12L, dtype = "int32")$reshape(c(4L, 3L)))
  expect_identical(read_npy(path), matrix(0:11, nrow = 4, byrow = TRUE))
})

test_that("unsupported or damaged files fail naming the file", {
  path <- write_npy_fixture(tempfile(fileext = ".npy"), array(1, dim = c(2, 2)))
  bytes <- readBin(path, "raw", file.size(path))
  rewrite <- function(from, to) {
    text <- sub(from, to, rawToChar(bytes[1:64][-(1:10)]), fixed = TRUE)
    writeBin(c(bytes[1:10], charToRaw(text), bytes[-(1:64)]), path)
  }
  rewrite("'fortran_order': False", "'fortran_order': True ")
  expect_error(read_npy(path), "Fortran-order.*not supported", fixed = FALSE)
  rewrite("'<f4'", "'>f4'")
  expect_error(read_npy(path), ">f4 is not supported")
  writeBin(bytes[1:(length(bytes) - 4)], path)
  expect_error(read_npy(path), basename(path))
  writeBin(charToRaw("not an npy file at all"), path)
  expect_error(read_npy(path), "not an npy file")
})
