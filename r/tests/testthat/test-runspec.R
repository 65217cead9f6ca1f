# Twins: tests/test_launch.py

spec_fixture <- function(...) {
  spec <- list(spec_version = 3L, stack = "some-stack", model = "lstm", dataset = "d", model_config = list(units = 4L),
               training = list(epochs = 2L, batch_size = 4L, optimizer = list(name = "adam", learning_rate = 0.001)),
               shards = "/s/manifest.json", order = "/o.npy", initial_weights = NULL, init_seed = 1L,
               threads = 2L, seed = 3L, device = "cpu", measurements = "/m.json", check = NULL, check_steps = 0L,
               trained_weights = NULL, inference = NULL)
  modifyList(spec, list(...))
}
write_spec <- function(spec) write_json_atomic(tempfile(fileext = ".json"), spec)
INFERENCE <- list(batch_sizes = c(1L, 8L), warmup_calls = 1L, min_calls = 2L, max_calls = 5L, min_seconds = 0.1,
                  evaluate = list(list(stack = "other", weights = "/w/manifest.json")), logits = "/l", onnx = NULL)

test_that("the keys are those of schemas/runspec.schema.json", {
  schema <- read_schema("runspec.schema.json")
  expect_setequal(c(RUNSPEC_REQUIRED, names(RUNSPEC_DEFAULTS)), names(schema$properties))
  expect_identical(schema$properties$spec_version$const, RUNSPEC_VERSION)
  expect_setequal(names(spec_fixture()), unlist(schema$required))
  expect_setequal(RUNSPEC_CHECKS, unlist(schema$properties$check$enum))  # and null
})

test_that("a spec reads with every key, nulls kept", {
  spec <- read_runspec(write_spec(spec_fixture()))
  expect_setequal(names(spec), names(spec_fixture()))
  expect_true(all(c("initial_weights", "trained_weights", "inference") %in% names(spec)))
  expect_null(spec$initial_weights)
  expect_null(spec$trained_weights)
  expect_identical(spec$measurements, "/m.json")
  expect_identical(spec$training$optimizer$learning_rate, 0.001)
  kept <- read_runspec(write_spec(spec_fixture(trained_weights = "/r/repeat1.weights")))
  expect_identical(kept$trained_weights, "/r/repeat1.weights")
})

test_that("check, check_steps, trained_weights, inference and spec_version default as in Python's RunSpec", {
  spec <- spec_fixture()
  spec[c("check", "check_steps", "trained_weights", "inference", "spec_version")] <- NULL
  spec <- read_runspec(write_spec(spec))
  expect_null(spec$check)
  expect_identical(spec$check_steps, 0L)
  expect_null(spec$trained_weights)
  expect_null(spec$inference)
  expect_true(all(c("trained_weights", "inference") %in% names(spec)))
  expect_identical(spec$spec_version, 3L)
})

test_that("bad specs are rejected with the reason", {
  expect_error(read_runspec(write_spec(spec_fixture(extra = 1L))), "unknown keys extra")
  expect_error(read_runspec(write_spec(spec_fixture(device = "tpu"))), "device must be cpu, gpu or auto")
  expect_error(read_runspec(write_spec(spec_fixture(check = "grads"))),
               "check must be null, \"step_losses\", \"profile\" or \"inference\", got \"grads\"")
  expect_error(read_runspec(write_spec(spec_fixture(spec_version = 2L))), "version 2 is not supported \\(expected 3\\)")
  expect_error(read_runspec(write_spec(spec_fixture(seed = NULL))), "lacks keys seed")
  old <- spec_fixture(spec_version = 1L, record = "/r.json")
  old$measurements <- NULL
  expect_error(read_runspec(write_spec(old)), "unknown keys record")
})

test_that("check mode, profile mode and inference mode are accepted", {
  for (check in c("step_losses", "profile")) {
    expect_identical(read_runspec(write_spec(spec_fixture(check = check, check_steps = 3L)))$check, check)
  }
  spec <- read_runspec(write_spec(spec_fixture(check = "inference", inference = INFERENCE)))
  expect_identical(spec$check, "inference")
  expect_identical(spec$inference$evaluate[[1]]$weights, "/w/manifest.json")
  expect_null(spec$inference$onnx)
  expect_identical(spec$inference$min_seconds, 0.1)
})

test_that("`inference` is given exactly when check is \"inference\"", {
  given_exactly <- "`inference` is given exactly when check is \"inference\""
  expect_error(read_runspec(write_spec(spec_fixture(check = "inference"))), given_exactly, fixed = TRUE)
  expect_error(read_runspec(write_spec(spec_fixture(inference = INFERENCE))), given_exactly, fixed = TRUE)
  expect_error(read_runspec(write_spec(spec_fixture(check = "profile", check_steps = 2L, inference = INFERENCE))),
               given_exactly, fixed = TRUE)
})
