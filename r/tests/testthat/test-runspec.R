# Twins: tests/test_runspec.py, julia/test/test_runspec.jl.

spec_fixture <- function(...) {
  spec <- list(stack = "r-keras", model = "lstm", dataset = "d", model_config = list(units = 4L),
               training = list(epochs = 2L, batch_size = 4L, optimizer = list(name = "adam", learning_rate = 0.001)),
               shards = "/s/manifest.json", order = "/o.npy", initial_weights = NULL, init_seed = 1L,
               threads = 2L, seed = 3L, device = "cpu", record = "/r.json")
  modifyList(spec, list(...))
}
write_spec <- function(spec) write_json_atomic(tempfile(fileext = ".json"), spec)

test_that("a spec reads with defaults and nulls kept", {
  spec <- read_runspec(write_spec(spec_fixture()))
  expect_true("initial_weights" %in% names(spec))
  expect_null(spec$initial_weights)
  expect_null(spec$check)
  expect_identical(spec$check_steps, 0L)
  expect_identical(spec$spec_version, 1L)
  expect_identical(spec_hyperparameters(spec),
                   list(model = list(units = 4L), training = spec_fixture()$training))
})

test_that("bad specs are rejected with the reason", {
  expect_error(read_runspec(write_spec(spec_fixture(extra = 1L))), "unknown keys extra")
  expect_error(read_runspec(write_spec(spec_fixture(device = "tpu"))), "device must be cpu, gpu or auto")
  expect_error(read_runspec(write_spec(spec_fixture(check = "grads"))), "check must be null")
  expect_error(read_runspec(write_spec(spec_fixture(spec_version = 2L))), "version 2 is not supported")
  expect_error(read_runspec(write_spec(spec_fixture(seed = NULL))), "lacks keys seed")
})
