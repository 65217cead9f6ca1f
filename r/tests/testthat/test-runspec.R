# Twins: tests/test_launch.py

spec_fixture <- function(...) {
  spec <- list(spec_version = 2L, stack = "some-stack", model = "lstm", dataset = "d", model_config = list(units = 4L),
               training = list(epochs = 2L, batch_size = 4L, optimizer = list(name = "adam", learning_rate = 0.001)),
               shards = "/s/manifest.json", order = "/o.npy", initial_weights = NULL, init_seed = 1L,
               threads = 2L, seed = 3L, device = "cpu", measurements = "/m.json", check = NULL, check_steps = 0L)
  modifyList(spec, list(...))
}
write_spec <- function(spec) write_json_atomic(tempfile(fileext = ".json"), spec)

test_that("the keys are those of schemas/runspec.schema.json", {
  schema <- read_schema("runspec.schema.json")
  expect_setequal(c(RUNSPEC_REQUIRED, names(RUNSPEC_DEFAULTS)), names(schema$properties))
  expect_identical(schema$properties$spec_version$const, RUNSPEC_VERSION)
  expect_setequal(names(spec_fixture()), unlist(schema$required))
})

test_that("a spec reads with every key, nulls kept", {
  spec <- read_runspec(write_spec(spec_fixture()))
  expect_setequal(names(spec), names(spec_fixture()))
  expect_true("initial_weights" %in% names(spec))
  expect_null(spec$initial_weights)
  expect_identical(spec$measurements, "/m.json")
  expect_identical(spec$training$optimizer$learning_rate, 0.001)
})

test_that("check, check_steps and spec_version default as in Python's RunSpec", {
  spec <- spec_fixture()
  spec[c("check", "check_steps", "spec_version")] <- NULL
  spec <- read_runspec(write_spec(spec))
  expect_null(spec$check)
  expect_identical(spec$check_steps, 0L)
  expect_identical(spec$spec_version, 2L)
})

test_that("bad specs are rejected with the reason", {
  expect_error(read_runspec(write_spec(spec_fixture(extra = 1L))), "unknown keys extra")
  expect_error(read_runspec(write_spec(spec_fixture(device = "tpu"))), "device must be cpu, gpu or auto")
  expect_error(read_runspec(write_spec(spec_fixture(check = "grads"))),
               "check must be null, \"step_losses\" or \"profile\", got \"grads\"")
  expect_error(read_runspec(write_spec(spec_fixture(spec_version = 1L))), "version 1 is not supported \\(expected 2\\)")
  expect_error(read_runspec(write_spec(spec_fixture(seed = NULL))), "lacks keys seed")
  old <- spec_fixture(spec_version = 1L, record = "/r.json")
  old$measurements <- NULL
  expect_error(read_runspec(write_spec(old)), "unknown keys record")
})

test_that("check mode and profile mode are accepted", {
  for (check in c("step_losses", "profile")) {
    expect_identical(read_runspec(write_spec(spec_fixture(check = check, check_steps = 3L)))$check, check)
  }
})
