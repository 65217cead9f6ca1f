# Twins: tests/test_r_stack.py, r/stacks/r-keras/tests/testthat/test-train.R

test_that("optimisers are the spec's, by name, in MXNet's documented forms", {
  skip_without_mxnet()
  net <- build_lstm(TINY_LSTM)
  net$initialize()
  params <- trainable_parameters(net)
  sgd <- make_trainer(params, list(name = "sgd", learning_rate = 0.1, momentum = 0.9))$optimizer
  expect_identical(class(sgd)[[1]], "mxnet.optimizer.optimizer.SGD")
  expect_equal(r_value(sgd$momentum), 0.9)
  expect_equal(r_value(sgd$lr), 0.1)
  adam <- make_trainer(params, list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999,
                                    epsilon = 1e-8))$optimizer
  expect_identical(class(adam)[[1]], "mxnet.optimizer.optimizer.Adam")
  expect_equal(c(r_value(adam$beta1), r_value(adam$beta2), r_value(adam$epsilon)), c(0.9, 0.999, 1e-8))
  expect_error(make_trainer(params, list(name = "lamb")), "unknown optimizer 'lamb'")
})

test_that("check mode's first loss is the reference forward pass on the order's first batch", {
  skip_without_mxnet()
  run <- write_lstm_run(tempfile("check"), epochs = 1L, check_steps = 3L)
  expect_identical(run_entry_point(run$spec), 0L)
  check <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"))
  expect_identical(check$check, "step_losses")
  expect_identical(check$stack, "r-mxnet")
  expect_length(check$losses, 3)
  spec <- model_spec("lstm", TINY_LSTM)
  expect_identical(check$parameter_count, as.integer(parameter_count(spec)))
  w <- read_initial_weights(file.path(run$dir, "weights", "manifest.json"), spec)
  first <- run$order[1, 1:4] + 1L
  expected <- cross_entropy(lstm_reference_logits(w, run$shards$x_train[first, ]), run$shards$y_train[first])
  expect_equal(check$losses[[1]], expected, tolerance = 1e-5)
  expect_false(isTRUE(all.equal(check$losses[[2]], check$losses[[1]])))
})

test_that("a training run writes ok measurements, raw values only", {
  skip_without_mxnet()
  run <- write_lstm_run(tempfile("train"), epochs = 2L)
  expect_identical(run_entry_point(run$spec), 0L)
  m <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"), simplifyVector = FALSE)
  expect_identical(names(m), MEASUREMENTS_FIELDS)  # every field measured, none derived
  expect_identical(m$status, "ok")
  expect_null(m$reason)
  expect_identical(c(m$stack, m$model, m$dataset), c("r-mxnet", "lstm", "tiny-imdb"))
  expect_identical(m$language_version, as.character(getRversion()))
  expect_identical(m$framework_version, reticulate::import("mxnet")$`__version__`)
  expect_identical(m$device, "cpu")
  expect_length(m$epoch_seconds, 2)
  expect_length(m$train_loss_per_epoch, 2)
  expect_true(all(unlist(m$epoch_seconds) > 0))
  expect_identical(m$parameter_count, as.integer(parameter_count(model_spec("lstm", TINY_LSTM))))
  expect_true(m$test_accuracy >= 0 && m$test_accuracy <= 1)
  expect_true(m$startup_seconds > 0 && m$peak_rss_mb > 0)
  expect_true(m$fused_kernel)
  expect_match(m$kernel_notes, "oneDNN LSTM", fixed = TRUE)
})

test_that("without a usable Python the stack writes skipped measurements and exits 0", {
  run <- write_lstm_run(tempfile("skip"), epochs = 1L)
  missing_python <- file.path(tempdir(), "no-such-env", "bin", "python")
  expect_identical(run_entry_point(run$spec, env = paste0("RETICULATE_PYTHON=", missing_python)), 0L)
  m <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"), simplifyVector = FALSE)
  expect_identical(m$status, "skipped")
  expect_match(m$reason, missing_python, fixed = TRUE)
  expect_identical(names(m), c("measurements_version", "status", "reason", "stack", "model", "dataset",
                               "language_version"))
})

test_that("a spec the stack cannot run exits non-zero, writing nothing", {
  run <- write_lstm_run(tempfile("bad"), epochs = 1L)
  spec <- jsonlite::fromJSON(run$spec, simplifyVector = FALSE)
  spec$spec_version <- 1L
  write_json_atomic(run$spec, spec)
  expect_false(identical(run_entry_point(run$spec), 0L))
  expect_false(file.exists(file.path(run$dir, "measurements.json")))
})
