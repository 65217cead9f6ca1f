# Twins: tests/test_npy.py, tests/test_rbridge.py, julia/test/runtests.jl

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

test_that("write_npy writes what read_npy reads back: shape, type, NumPy's indexing", {
  x <- array(seq(0, 23) / 8, dim = c(2, 3, 4))
  path <- write_npy(tempfile(fileext = ".npy"), x)
  expect_identical(read_npy(path), x)
  # Row-major data: NumPy's [1, 2, 3] (0-based) is value 1*12 + 2*4 + 3, the file's last.
  data <- utils::tail(readBin(path, "double", n = file.size(path) / 4, size = 4, endian = "little"), 24)
  expect_identical(data[24], x[2, 3, 4])
  expect_identical(data[1 * 12 + 1], x[2, 1, 1])
  m <- matrix(c(-5L, 0L, 7L, .Machine$integer.max, 1L, 2L), nrow = 2)
  expect_identical(read_npy(write_npy(tempfile(), m)), m)
  expect_identical(read_npy(write_npy(tempfile(), c(3L, 1L, 2L))), c(3L, 1L, 2L))
  expect_identical(read_npy(write_npy(tempfile(), array(c(0.5, 2), dim = 2))), c(0.5, 2))  # 1-D: a vector
  # doubles become float32, rounded to nearest
  expect_identical(read_npy(write_npy(tempfile(), 0.1)), readBin(writeBin(0.1, raw(), size = 4), "double", size = 4))
  expect_error(write_npy(tempfile(), c(TRUE, FALSE)), "an R logical cannot be written")
})

test_that("NumPy reads R's files as the same arrays, written byte for byte as np.save writes them", {
  skip_without_python()
  dir <- tempfile("r-written")
  dir.create(dir)
  write_npy(file.path(dir, "f.npy"), array((0:59) / 8, dim = c(3, 4, 5)))
  write_npy(file.path(dir, "i.npy"), matrix(0:11, nrow = 4, byrow = TRUE))
  write_npy(file.path(dir, "v.npy"), c(-1L, .Machine$integer.max))
  write_npy(file.path(dir, "long.npy"), numeric(123456))
  out <- run_python(c(
    "import io, sys, numpy as np",
    "d = sys.argv[1]",
    "expected = {'f': np.ascontiguousarray((np.arange(60, dtype=np.float32) / 8).reshape(5, 4, 3).transpose()),",
    "            'i': np.arange(12, dtype=np.int32).reshape(4, 3),",
    "            'v': np.array([-1, 2**31 - 1], dtype=np.int32), 'long': np.zeros(123456, np.float32)}",
    "for name, want in expected.items():",
    "    got = np.load(f'{d}/{name}.npy')",
    "    saved = io.BytesIO()",
    "    np.save(saved, want)",
    "    same = got.dtype == want.dtype and np.array_equal(got, want)",
    "    print(name, same, saved.getvalue() == open(f'{d}/{name}.npy', 'rb').read())"), dir)
  expect_identical(out, c("f True True", "i True True", "v True True", "long True True"))
})

test_that("write_bundle writes the arrays, then a manifest with their sha256, shapes and dtypes", {
  arrays <- bundle_arrays()
  dir <- file.path(tempfile(), "bundle")  # made as needed
  manifest <- write_bundle(dir, "weights", arrays, list(model = "m", epochs = 2L))
  expect_identical(manifest, file.path(dir, "manifest.json"))
  bundle <- read_bundle(manifest, "weights")  # checksums, shapes and dtypes verified
  expect_identical(bundle$arrays, arrays)
  m <- bundle$manifest
  expect_identical(m[c("format", "format_version")], list(format = "dlrosetta.weights", format_version = 1L))
  expect_identical(m$meta, list(model = "m", epochs = 2L))
  expect_identical(vapply(m$arrays, `[[`, "", "file"), c("a.npy", "b.npy"))
  expect_identical(vapply(m$arrays, `[[`, "", "dtype"), c("float32", "int32"))
  expect_identical(lapply(m$arrays, function(e) unlist(e$shape)), list(c(2L, 3L, 4L), 3L))
  expect_identical(vapply(m$arrays, `[[`, "", "sha256"),
                   vapply(file.path(dir, c("a.npy", "b.npy")), sha256_file, "", USE.NAMES = FALSE))
  expect_false(file.exists(paste0(manifest, ".tmp")))
  empty <- write_bundle(tempfile(), "logits", list(), list())
  expect_match(paste(readLines(empty), collapse = ""), "\"meta\": \\{\\}")
})

test_that("write_bundle removes the old manifest before it writes any array", {
  dir <- tempfile()
  manifest <- write_bundle(dir, "weights", bundle_arrays(), list())
  # An array that cannot be written stops the bundle half way: no manifest is left to
  # describe the files that are there.
  expect_error(write_bundle(dir, "weights", list(a = 1, bad = "text"), list()), "cannot be written")
  expect_false(file.exists(manifest))
  expect_identical(read_npy(file.path(dir, "a.npy")), 1)
})

test_that("Python's reader takes an R-written bundle", {
  skip_without_python()
  manifest <- write_bundle(tempfile(), "logits", list(s = matrix(c(0.25, -1, 3, 4.5), 2)), list(stack = "r"))
  out <- run_python(c(
    "import sys",
    "from dlrosetta.npy import read_bundle",
    "arrays, manifest = read_bundle(sys.argv[1], 'logits')",
    "print(arrays['s'].tolist(), arrays['s'].dtype, manifest['meta'])"), manifest)
  expect_identical(out, "[[0.25, 3.0], [-1.0, 4.5]] float32 {'stack': 'r'}")
})
