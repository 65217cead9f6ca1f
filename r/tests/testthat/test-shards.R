# Twins: tests/test_npybundle.py, julia/test/test_shards.jl.

shard_arrays <- function() {
  # Multiples of 1/128: exact in float32, so the read-back is identical.
  list(x_train = array(seq_len(2 * 4 * 4 * 3) / 128, dim = c(2, 4, 4, 3)), y_train = c(1L, 0L),
       x_test = array(seq_len(4 * 4 * 3) / 64, dim = c(1, 4, 4, 3)), y_test = 1L)
}

test_that("sha256_file agrees with a known digest", {
  path <- tempfile()
  writeBin(charToRaw("abc"), path)
  expect_identical(sha256_file(path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
})

test_that("read_shards verifies and returns every split with metadata", {
  arrays <- shard_arrays()
  manifest <- write_bundle_fixture(tempfile(), "shards", arrays, list(dataset = "tiny", num_classes = 2L))
  shards <- read_shards(manifest)
  expect_identical(shards[SHARD_SPLITS], arrays)
  expect_identical(shards$meta$num_classes, 2L)
  expect_identical(shards$manifest_sha256, sha256_file(manifest))
})

test_that("a changed file fails its checksum, naming it", {
  manifest <- write_bundle_fixture(tempfile(), "shards", shard_arrays())
  path <- file.path(dirname(manifest), "y_train.npy")
  bytes <- readBin(path, "raw", file.size(path))
  bytes[length(bytes)] <- as.raw(7)
  writeBin(bytes, path)
  expect_error(read_shards(manifest), "checksum mismatch for .*y_train\\.npy")
  expect_silent(read_shards(manifest, verify = FALSE))
})

test_that("without sha256sum on PATH, verification stops and says why", {
  manifest <- write_bundle_fixture(tempfile(), "shards", shard_arrays())
  withr::local_envvar(PATH = tempfile("empty-path"))
  expect_error(read_shards(manifest), "sha256sum \\(GNU coreutils\\) is not on PATH")
})

test_that("manifest disagreements are reported by file and array", {
  manifest <- write_bundle_fixture(tempfile(), "shards", shard_arrays())
  m <- jsonlite::fromJSON(manifest, simplifyVector = FALSE)
  m$arrays[[2]]$shape <- list(3L)
  jsonlite::write_json(m, manifest, auto_unbox = TRUE)
  expect_error(read_bundle(manifest, names = "y_train"), "y_train\\.npy: shape/dtype \\(2\\)/int32 differ from manifest \\(3\\)/int32")
  expect_error(read_bundle(manifest, names = "nope"), "no array named 'nope'")
  expect_error(read_bundle(manifest, kind = "weights"), "expected 'dlrosetta.weights'")
  unlink(file.path(dirname(manifest), "x_test.npy"))
  expect_error(read_bundle(manifest, names = "x_test"), "shard file missing: .*x_test\\.npy")
  expect_error(read_manifest(file.path(tempdir(), "absent.json")), "bundle manifest not found")
})
