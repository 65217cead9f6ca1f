# Twins: tests/test_npy.py, tests/test_rbridge.py

shard_arrays <- function() {
  # Multiples of 1/128: exact in float32, so the read-back is identical.
  list(x_train = array(seq_len(2 * 4 * 4 * 3) / 128, dim = c(2, 4, 4, 3)), y_train = c(1L, 0L),
       x_test = array(seq_len(4 * 4 * 3) / 64, dim = c(1, 4, 4, 3)), y_test = 1L)
}

test_that("read_shards verifies and returns every split with metadata", {
  arrays <- shard_arrays()
  manifest <- write_bundle_fixture(tempfile(), "shards", arrays, list(dataset = "tiny", num_classes = 2L))
  shards <- read_shards(manifest)
  expect_identical(names(shards), c(SHARD_SPLITS, "meta"))
  expect_identical(shards[SHARD_SPLITS], arrays)
  expect_identical(shards$meta$num_classes, 2L)
})

test_that("shards are checked like any bundle: kind, checksums, every split", {
  arrays <- shard_arrays()
  expect_error(read_shards(write_bundle_fixture(tempfile(), "weights", arrays)), "expected 'dlrosetta.shards'")
  expect_error(read_shards(write_bundle_fixture(tempfile(), "shards", arrays[-4])), "no array named 'y_test'")
  manifest <- write_bundle_fixture(tempfile(), "shards", arrays)
  path <- file.path(dirname(manifest), "y_train.npy")
  bytes <- readBin(path, "raw", file.size(path))
  bytes[length(bytes) - 3] <- as.raw(7)  # the last int32, little-endian: now 7
  writeBin(bytes, path)
  expect_error(read_shards(manifest), "checksum mismatch for .*y_train\\.npy")
  expect_identical(read_shards(manifest, verify = FALSE)$y_train, c(1L, 7L))
})
