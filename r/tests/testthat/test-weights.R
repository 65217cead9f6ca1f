# Twins: tests/test_model_spec.py, julia/test/runtests.jl

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

trained_spec <- function() {
  list(stack = "some-stack", dataset = "tiny-imdb", model_config = TINY_LSTM, init_seed = 42L,
       training = list(epochs = 3L, batch_size = 4L))
}

test_that("trained weights are written as a weights bundle in spec order, with the contract's meta", {
  spec <- model_spec("lstm", TINY_LSTM)
  w <- initial_weights(spec, 2L)
  dir <- file.path(tempfile(), "repeat1.weights")
  manifest <- write_trained_weights(dir, trained_spec(), spec, rev(w), 1234)
  expect_identical(manifest, file.path(dir, "manifest.json"))
  expect_equal(read_initial_weights(manifest, spec), w, tolerance = 1e-7)  # float32 in the files
  bundle <- read_bundle(manifest, "weights")
  expect_identical(names(bundle$arrays), param_names(spec))
  expect_true(all(vapply(bundle$manifest$arrays, `[[`, "", "dtype") == "float32"))
  expect_identical(bundle$manifest$meta, list(model = "lstm", model_config = TINY_LSTM, seed = 42L,
                                              parameter_count = 1234L, stack = "some-stack", dataset = "tiny-imdb",
                                              epochs = 3L, trained = TRUE))
})

test_that("integer tensors are kept as float32; weights that do not fit are refused, naming the stack", {
  spec <- model_spec("lstm", TINY_LSTM)
  w <- initial_weights(spec, 2L)
  w$head.dense.bias <- c(0L, 1L)
  manifest <- write_trained_weights(tempfile(), trained_spec(), spec, w, 1)
  expect_identical(read_initial_weights(manifest, spec)$head.dense.bias, c(0, 1))
  dir <- tempfile()
  expect_error(write_trained_weights(dir, trained_spec(), spec, w[-1], 1),
               "the trained weights of some-stack do not fit this lstm: missing \\[embedding.embeddings\\]")
  expect_false(dir.exists(dir))
})

test_that("Python's weights reader takes R's trained bundle and its meta", {
  skip_without_python()
  spec <- model_spec("lstm", TINY_LSTM)
  manifest <- write_trained_weights(tempfile(), trained_spec(), spec, initial_weights(spec, 2L), 7)
  out <- run_python(c(
    "import sys, json",
    "from dlrosetta.model_spec import model_spec",
    "from dlrosetta.npy import read_bundle",
    "from dlrosetta.weights import read_initial_weights",
    "cfg = json.loads(sys.argv[2])",
    "weights = read_initial_weights(sys.argv[1], model_spec('lstm', cfg))",
    "print(list(weights) == model_spec('lstm', cfg).names(), read_bundle(sys.argv[1], 'weights')[1]['meta']['trained'])"),
    manifest, jsonlite::toJSON(TINY_LSTM, auto_unbox = TRUE))
  expect_identical(out, "True True")
})
