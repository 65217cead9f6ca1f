# Twins: tests/test_npy.py, tests/test_rbridge.py

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
  skip_without_python()
  dir <- tempfile("numpy")
  dir.create(dir)
  run_python(c(
    "import sys, numpy as np",
    "d = sys.argv[1]",
    "np.save(d + '/f.npy', (np.arange(60, dtype=np.float32) / np.float32(7)).reshape(3, 4, 5))",
    "np.save(d + '/i.npy', np.arange(12, dtype=np.int32).reshape(4, 3))",
    "np.save(d + '/v.npy', np.array([-1, 2**31 - 1], dtype=np.int32))"), dir)
  # float32 division rounds correctly, and so does rounding the double quotient to float32.
  float32 <- function(x) readBin(writeBin(x, raw(), size = 4), "double", n = length(x), size = 4)
  expect_identical(read_npy(file.path(dir, "f.npy")), aperm(array(float32((0:59) / 7), dim = c(5, 4, 3))))
  expect_identical(read_npy(file.path(dir, "i.npy")), matrix(0:11, nrow = 4, byrow = TRUE))
  expect_identical(read_npy(file.path(dir, "v.npy")), c(-1L, .Machine$integer.max))
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

bundle_arrays <- function() {
  # Multiples of 1/128: exact in float32, so the read-back is identical.
  list(a = array(seq_len(2 * 3 * 4) / 128, dim = c(2, 3, 4)), b = c(1L, 0L, 5L))
}

test_that("sha256_file agrees with a known digest", {
  path <- tempfile()
  writeBin(charToRaw("abc"), path)
  expect_identical(sha256_file(path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  expect_error(sha256_file(file.path(tempdir(), "absent")), "cannot hash .*absent: file not found")
})

test_that("a bundle reads back every array, or those named, with its manifest", {
  arrays <- bundle_arrays()
  manifest <- write_bundle_fixture(tempfile(), "weights", arrays, list(model = "m"))
  bundle <- read_bundle(manifest, "weights")
  expect_identical(bundle$arrays, arrays)
  expect_identical(bundle$manifest$meta, list(model = "m"))
  expect_identical(read_bundle(manifest, names = "b")$arrays, arrays["b"])
})

test_that("a changed file fails its checksum, naming it", {
  manifest <- write_bundle_fixture(tempfile(), "weights", bundle_arrays())
  path <- file.path(dirname(manifest), "b.npy")
  bytes <- readBin(path, "raw", file.size(path))
  bytes[length(bytes) - 3] <- as.raw(7)  # the last int32, little-endian: now 7
  writeBin(bytes, path)
  expect_error(read_bundle(manifest), "checksum mismatch for .*b\\.npy")
  expect_identical(read_bundle(manifest, verify = FALSE)$arrays$b, c(1L, 0L, 7L))
})

test_that("without sha256sum on PATH, verification stops and says why", {
  manifest <- write_bundle_fixture(tempfile(), "weights", bundle_arrays())
  withr::local_envvar(PATH = tempfile("empty-path"))
  expect_error(read_bundle(manifest), "sha256sum \\(GNU coreutils\\) is not on PATH")
})

test_that("manifest disagreements are reported by file and array", {
  manifest <- write_bundle_fixture(tempfile(), "shards", bundle_arrays())
  m <- jsonlite::fromJSON(manifest, simplifyVector = FALSE)
  m$arrays[[2]]$shape <- list(4L)
  jsonlite::write_json(m, manifest, auto_unbox = TRUE)
  expect_error(read_bundle(manifest, names = "b"), "b\\.npy: shape/dtype \\(3\\)/int32 differ from manifest \\(4\\)/int32")
  expect_error(read_bundle(manifest, names = "nope"), "no array named 'nope'")
  expect_error(read_bundle(manifest, kind = "weights"), "expected 'dlrosetta.weights'")
  unlink(file.path(dirname(manifest), "a.npy"))
  expect_error(read_bundle(manifest, names = "a"), "shard file missing: .*a\\.npy")
  m$format_version <- 2L
  jsonlite::write_json(m, manifest, auto_unbox = TRUE)
  expect_error(read_manifest(manifest), "format_version 2 is not supported")
  writeLines("{not json", manifest)
  expect_error(read_manifest(manifest), "is not valid JSON")
  expect_error(read_manifest(file.path(tempdir(), "absent.json")), "bundle manifest not found")
})
