# The shared training loop: what it times, what it writes, check mode and skips, driven by
# stand-in steps (no framework).
#
# Twins: tests/test_launch.py

fake_spec <- function(check = NULL) {
  list(stack = "some-stack", model = "lstm", dataset = "d", measurements = tempfile(fileext = ".json"),
       training = list(epochs = 3L, batch_size = 2L), check = check, check_steps = 2L)
}
ORDER <- matrix(c(0:5, 5:0, c(1L, 0L, 3L, 2L, 5L, 4L)), nrow = 3, byrow = TRUE)
MEASURED <- function() list(framework_version = "0", device = "cpu", parameter_count = 7L,
                            fused_kernel = FALSE, kernel_notes = "stand-in")

test_that("every epoch is timed and its mean loss kept; the batches follow the order file", {
  seen <- list()
  spec <- fake_spec()
  run_training(spec, ORDER,
               train_batches = function(b) { seen[[length(seen) + 1]] <<- b; rep(length(seen), nrow(b)) },
               evaluate = function() length(seen) / 10, measured = MEASURED)
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$status, "ok")
  expect_equal(m$train_loss_per_epoch, c(1, 2, 3))
  expect_length(m$epoch_seconds, 3)
  expect_true(all(m$epoch_seconds > 0))
  expect_equal(m$test_accuracy_per_epoch, c(0.1, 0.2, 0.3))  # evaluated after each epoch's training
  expect_equal(m$parameter_count, 7L)
  expect_equal(m$kernel_notes, "stand-in")
  expect_equal(seen[[2]], epoch_batches(ORDER, 2L, 2L))
  expect_null(m$steady_epoch_seconds)  # statistics are the launcher's
})

test_that("evaluation after every epoch is timed apart, outside the epoch's time", {
  spec <- fake_spec()
  sleep_s <- 0.2
  messages <- capture_messages(
    run_training(spec, ORDER, train_batches = function(b) rep(0.5, nrow(b)),
                 evaluate = function() { Sys.sleep(sleep_s); 0.75 }, measured = MEASURED))
  expect_length(messages, 3)
  expect_match(messages, "epoch [123]/3: [0-9.]+ s, loss 0.5000, test accuracy 0.7500", all = TRUE)
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$test_accuracy_per_epoch, rep(0.75, 3))
  expect_length(m$eval_seconds_per_epoch, 3)
  expect_true(all(m$eval_seconds_per_epoch >= sleep_s))
  expect_true(all(m$epoch_seconds < sleep_s))
})

test_that("check mode writes the first steps' losses and the parameter count", {
  spec <- fake_spec(check = "step_losses")
  run_training(spec, ORDER, train_batches = function(b) seq_len(nrow(b)) / 10, evaluate = function() stop("no"),
               measured = MEASURED)
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$losses, c(0.1, 0.2))
  expect_equal(m$parameter_count, 7L)
})

test_that("a skip writes skipped measurements with the reason", {
  spec <- fake_spec()
  expect_message(write_skipped(spec, "no framework here"), "skipped: no framework here")
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$status, "skipped")
  expect_equal(m$reason, "no framework here")
  expect_equal(m$stack, "some-stack")
})

test_that("the inputs are the spec's weights, shards and order, checked", {
  run <- write_lstm_run(tempfile("inputs"), epochs = 2L, stack = "some-stack")
  spec <- read_runspec(run$spec)
  inputs <- read_inputs(spec)
  expect_equal(inputs$order, run$order)
  expect_equal(inputs$shards$y_train, run$shards$y_train)
  expect_equal(inputs$weights, run$weights, tolerance = 1e-7)
  spec$training$epochs <- 5L
  expect_error(read_inputs(spec), "epoch order")
})
