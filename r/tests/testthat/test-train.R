# Twins: tests/test_stacks_base.py, tests/test_r_stack.py, julia/test/test_train.jl.

test_that("epoch batches follow the order row and drop the partial batch", {
  order <- rbind(c(4L, 0L, 3L, 1L, 2L), c(2L, 1L, 0L, 4L, 3L))
  expect_identical(epoch_batches(order, 2L, 2L), rbind(c(2L, 1L), c(0L, 4L)))
  expect_identical(dim(epoch_batches(order, 1L, 3L)), c(1L, 3L))
})

test_that("optimisers are the spec's, by name", {
  skip_without_keras()
  sgd <- make_optimizer(list(name = "sgd", learning_rate = 0.1, momentum = 0.9))
  expect_equal(reticulate::py_to_r(sgd$momentum), 0.9)
  expect_false(reticulate::py_to_r(sgd$nesterov))
  adam <- make_optimizer(list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8))
  expect_equal(reticulate::py_to_r(adam$epsilon), 1e-8)
  expect_identical(class(adam)[[1]], "dlrosetta.stacks.keras.trainer.Adam")  # densifies sparse gradients
  expect_error(make_optimizer(list(name = "lamb")), "unknown optimizer 'lamb'")
})

test_that("check mode's first loss is the reference forward pass on the order's first batch", {
  skip_without_keras()
  run <- write_lstm_run(tempfile("check"), epochs = 1L, check_steps = 3L)
  expect_identical(run_entry_point(run$spec), 0L)
  check <- jsonlite::fromJSON(file.path(run$dir, "record.json"))
  expect_identical(check$check, "step_losses")
  expect_length(check$losses, 3)
  expect_identical(check$parameter_count, as.integer(parameter_count(model_params("lstm", TINY_LSTM))))
  w <- read_initial_weights(file.path(run$dir, "weights", "manifest.json"), model_params("lstm", TINY_LSTM))
  first <- run$order[1, 1:4] + 1L
  expected <- cross_entropy(lstm_reference_logits(w, run$shards$x_train[first, ]), run$shards$y_train[first])
  expect_equal(check$losses[[1]], expected, tolerance = 1e-5)
  expect_false(isTRUE(all.equal(check$losses[[2]], check$losses[[1]])))
})

test_that("a training run writes a complete ok record", {
  skip_without_keras()
  run <- write_lstm_run(tempfile("train"), epochs = 2L)
  expect_identical(run_entry_point(run$spec), 0L)
  record <- jsonlite::fromJSON(file.path(run$dir, "record.json"), simplifyVector = FALSE)
  expect_identical(names(record), RECORD_FIELDS)
  expect_identical(record$status, "ok")
  expect_identical(record$language, "r")
  expect_identical(record$backend, keras_backend())
  expect_length(record$epoch_seconds, 2)
  expect_length(record$train_loss_per_epoch, 2)
  expect_identical(record$train_samples_per_epoch, 16L)
  expect_identical(record$parameter_count, as.integer(parameter_count(model_params("lstm", TINY_LSTM))))
  expect_identical(record$initial_weights_sha256, sha256_file(file.path(run$dir, "weights", "manifest.json")))
  expect_true(record$test_accuracy >= 0 && record$test_accuracy <= 1)
})

test_that("without a usable Python the stack writes a skipped record and exits 0", {
  run <- write_lstm_run(tempfile("skip"), epochs = 1L)
  missing_python <- file.path(tempdir(), "no-such-env", "bin", "python")
  expect_identical(run_entry_point(run$spec, env = paste0("RETICULATE_PYTHON=", missing_python)), 0L)
  record <- jsonlite::fromJSON(file.path(run$dir, "record.json"), simplifyVector = FALSE)
  expect_identical(record$status, "skipped")
  expect_match(record$reason, missing_python, fixed = TRUE)
  expect_null(record$parameter_count)
})
