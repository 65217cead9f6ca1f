# Twins: tests/test_model_spec.py

test_that("a weights bundle that fits reads back in canonical order", {
  spec <- model_spec("lstm", TINY_LSTM)
  w <- initial_weights(spec, 1L)
  ok <- write_bundle_fixture(tempfile(), "weights", rev(w))  # order in the bundle does not matter
  back <- read_initial_weights(ok, spec)
  expect_identical(names(back), param_names(spec))
  # float32 in the file: the draws come back rounded to float32, the shapes unchanged.
  expect_equal(back, w, tolerance = 1e-7)
  expect_identical(dim(back$lstm.kernel), dim(w$lstm.kernel))
})

test_that("a weights bundle that does not fit the model is rejected by tensor name", {
  spec <- model_spec("lstm", TINY_LSTM)
  bad <- initial_weights(spec, 1L)[-1]
  bad$lstm.bias <- numeric(3)
  bad$extra.kernel <- matrix(0, 2, 2)
  expect_error(read_initial_weights(write_bundle_fixture(tempfile(), "weights", bad), spec),
               "do not fit this lstm: missing \\[embedding.embeddings\\], unexpected \\[extra.kernel\\], wrong shape \\[lstm.bias\\]")
  shards <- write_bundle_fixture(tempfile(), "shards", initial_weights(spec, 1L))
  expect_error(read_initial_weights(shards, spec), "expected 'dlrosetta.weights'")
})
