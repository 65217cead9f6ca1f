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
  expect_match(messages, paste0("^\\[some-stack\\] epoch [123]/3: [0-9.]+ s, loss 0.5000, ([0-9]+|Inf) samples/s, ",
                                "test accuracy 0.7500, run time left ~[0-9]+ s\n$"), all = TRUE)
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$test_accuracy_per_epoch, rep(0.75, 3))
  expect_length(m$eval_seconds_per_epoch, 3)
  expect_true(all(m$eval_seconds_per_epoch >= sleep_s))
  expect_true(all(m$epoch_seconds < sleep_s))
})

test_that("the epoch line: seconds, loss, samples/s, test accuracy, the run's time left", {
  # The same example as Python's and Julia's tests of their line (docs/stack-contract.md):
  # time left = 1 epoch left x (mean epoch 1.5 s + mean evaluation 0.5 s, epochs 2-3).
  expect_equal(epoch_line("s", 4L, c(3, 1, 2), c(0.5, 0.25, 0.75), 1.23456, 0.5, 100L),
               "[s] epoch 3/4: 2.00 s, loss 1.2346, 50 samples/s, test accuracy 0.5000, run time left ~2 s")
  # After the first epoch, the first is all there is: 2 epochs x (2 s + 0.5 s).
  expect_equal(epoch_line("s", 3L, 2, 0.5, 0.7, 0.25, 64L),
               "[s] epoch 1/3: 2.00 s, loss 0.7000, 32 samples/s, test accuracy 0.2500, run time left ~5 s")
  spec <- fake_spec()
  messages <- capture_messages(
    run_training(spec, ORDER, train_batches = function(b) { Sys.sleep(0.01); rep(0.5, nrow(b)) },
                 evaluate = function() 0.75, measured = MEASURED))
  rates <- as.numeric(sub(".*, ([0-9]+) samples/s,.*", "\\1", messages))
  expect_true(all(rates > 0 & rates <= 6 / 0.01))  # 3 batches of 2 samples, each epoch at least 10 ms
  expect_match(messages[3], "epoch 3/3: .*run time left ~0 s")
})

test_that("check mode writes the first steps' losses and the parameter count", {
  spec <- fake_spec(check = "step_losses")
  run_training(spec, ORDER, train_batches = function(b) seq_len(nrow(b)) / 10, evaluate = function() stop("no"),
               measured = MEASURED)
  m <- jsonlite::fromJSON(spec$measurements)
  expect_equal(m$losses, c(0.1, 0.2))
  expect_equal(m$parameter_count, 7L)
})

# A stand-in for Python's trace_block: a context for with() that notes whether its block
# is running and, on exit, names a trace it wrote into out_dir.
stand_in_tracer <- function(out_dir) {
  tracer <- structure(new.env(), class = "stand_in_tracer")
  tracer$out_dir <- out_dir
  tracer$tracing <- FALSE
  tracer
}
registerS3method("with", "stand_in_tracer", function(data, expr, ...) {
  data$tracing <- TRUE
  value <- expr
  data$tracing <- FALSE
  writeLines("[]", file.path(data$out_dir, "trace.json"))
  data$trace <- "trace.json"
  data$profiler <- "stand-in profiler 0"
  value
})

test_that("profile mode runs three cyclic blocks, the last traced, and writes the profile", {
  spec <- fake_spec(check = "profile")  # 3 batches of 2, blocks of 2 steps
  seen <- list()
  tracer <- NULL
  run_training(spec, ORDER,
               train_batches = function(b) {
                 Sys.sleep(0.01)
                 seen[[length(seen) + 1]] <<- list(rows = b, traced = !is.null(tracer) && tracer$tracing)
                 rep(0.5, nrow(b))
               },
               evaluate = function() stop("profile mode evaluates nothing"), measured = MEASURED,
               trace_block = function(out_dir) tracer <<- stand_in_tracer(out_dir))
  rows <- epoch_batches(ORDER, 1L, 2L)
  expect_identical(lapply(seen, `[[`, "rows"), list(rows[1:2, ], rows[c(3, 1), ], rows[2:3, ]))
  expect_identical(vapply(seen, `[[`, TRUE, "traced"), c(FALSE, FALSE, TRUE))
  m <- jsonlite::fromJSON(spec$measurements)
  expect_named(m, c("check", "stack", "model", "steps", "profiler", "unprofiled_seconds", "profiled_seconds",
                    "trace", "parameter_count", "framework_version"))
  expect_identical(c(m$check, m$stack, m$model, m$profiler, m$trace, m$framework_version),
                   c("profile", "some-stack", "lstm", "stand-in profiler 0", "trace.json", "0"))
  expect_identical(c(m$steps, m$parameter_count), c(2L, 7L))
  expect_true(m$unprofiled_seconds >= 0.01 && m$profiled_seconds >= 0.01)
  expect_true(file.exists(file.path(dirname(spec$measurements), m$trace)))
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
