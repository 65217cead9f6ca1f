# The shared loop: what it times, what it writes, the trained weights it keeps, check
# mode, profile mode, inference mode and skips, driven by stand-in steps and a stand-in
# forward pass (no framework).
#
# Twins: tests/test_launch.py, tests/test_inference_mode.py

fake_spec <- function(check = NULL, trained_weights = NULL) {
  list(stack = "some-stack", model = "lstm", dataset = "d", model_config = TINY_LSTM, init_seed = 5L,
       measurements = tempfile(fileext = ".json"), training = list(epochs = 3L, batch_size = 2L), check = check,
       check_steps = 2L, trained_weights = trained_weights)
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

test_that("a training run that names trained_weights keeps its final weights as a canonical bundle", {
  spec <- fake_spec(trained_weights = file.path(tempfile(), "repeat1.weights"))
  mspec <- model_spec("lstm", TINY_LSTM)
  final <- initial_weights(mspec, 9L)
  epochs_done <- 0L
  suppressMessages(run_training(spec, ORDER, train_batches = function(b) rep(0.5, nrow(b)), evaluate = function() {
    epochs_done <<- epochs_done + 1L
    0.5
  }, measured = MEASURED, canonical_weights = function() {
    expect_identical(epochs_done, 3L)  # after the last epoch and its evaluation
    final
  }))
  manifest <- file.path(spec$trained_weights, "manifest.json")
  expect_equal(read_initial_weights(manifest, mspec), final, tolerance = 1e-7)
  meta <- read_bundle(manifest, "weights")$manifest$meta
  expect_identical(meta[c("seed", "parameter_count", "stack", "dataset", "epochs", "trained")],
                   list(seed = 5L, parameter_count = 7L, stack = "some-stack", dataset = "d", epochs = 3L, trained = TRUE))
  expect_identical(jsonlite::fromJSON(spec$measurements)$status, "ok")

  untouched <- fake_spec()
  suppressMessages(run_training(untouched, ORDER, train_batches = function(b) rep(0.5, nrow(b)),
                                evaluate = function() 0.5, measured = MEASURED,
                                canonical_weights = function() stop("no trained_weights in the spec")))
  expect_identical(jsonlite::fromJSON(untouched$measurements)$status, "ok")
})

test_that("the test split goes through the forward pass in chunks of EVAL_BATCH, rows in order", {
  x <- array(seq_len(2500 * 2 * 3), dim = c(2500, 2, 3))
  made <- list()
  inputs <- test_inputs(function(rows) { made[[length(made) + 1]] <<- rows; rows }, x)
  expect_identical(vapply(made, nrow, 0L), c(1000L, 1000L, 500L))
  expect_identical(made[[3]], x[2001:2500, , , drop = FALSE])
  predict <- function(rows) cbind(rows[, 1, 1], -rows[, 1, 1])
  expect_identical(test_logits(predict, inputs), cbind(x[, 1, 1], -x[, 1, 1]))
  tokens <- matrix(1:12, 6)
  expect_identical(test_inputs(identity, tokens), list(tokens))
  logits <- rbind(c(0, 1), c(2, 2), c(3, -1), c(0, 0))  # ties go to the first class, as argmax
  expect_identical(test_accuracy(identity, list(logits), c(1L, 0L, 0L, 1L)), 0.75)
})

test_that("timed calls: untimed ones first, then each on its own clock until min_calls and min_seconds, or max_calls", {
  calls <- 0L
  call <- function() { calls <<- calls + 1L; Sys.sleep(0.01) }
  seconds <- time_calls(call, 2L, 3L, 100L, 0)
  expect_identical(calls, 5L)
  expect_length(seconds, 3)
  expect_true(all(seconds >= 0.01 & seconds < 0.5))
  expect_gte(length(time_calls(call, 0L, 1L, 100L, 0.06)), 6)   # min_seconds beyond min_calls
  expect_length(time_calls(call, 0L, 1L, 4L, 10), 4)            # max_calls ends it
  expect_length(time_calls(call, 0L, 5L, 3L, 0), 3)             # even before min_calls
})

# A stand-in framework for inference mode: the model's "weights" are canonical tensors;
# its logits of an input (rows of the test array) are a function of both, so that what
# was loaded shows in them. Notes every input made and every call.
stand_in_model <- function() {
  model <- new.env()
  model$inputs <- list()
  model$calls <- 0L
  model$loaded <- list()
  model$load_weights <- function(w) {
    model$w <- w
    model$loaded[[length(model$loaded) + 1]] <- w
  }
  model$inference_input <- function(x) {
    model$inputs[[length(model$inputs) + 1]] <- x
    x
  }
  model$predict <- function(x) {
    model$calls <- model$calls + 1L
    cbind(rowSums(x), rep(sum(model$w$head.dense.bias), nrow(x)))
  }
  model
}

inference_run <- function(dir, evaluate = list(), onnx = NULL) {
  run <- write_lstm_run(dir, epochs = 1L, stack = "some-stack", inference = list(
    batch_sizes = c(1L, 8L), warmup_calls = 2L, min_calls = 3L, max_calls = 5L, min_seconds = 0,
    evaluate = evaluate, logits = file.path(dir, "logits"), onnx = onnx))
  run$spec <- read_runspec(run$spec)
  run
}

INFERENCE_KEYS <- c("check", "stack", "model", "dataset", "language_version", "framework_version", "device",
                    "parameter_count", "startup_seconds", "peak_rss_mb", "batches", "logits", "onnx_export")

test_that("inference mode times each batch size on an input made once, wrapping around the test split", {
  run <- inference_run(tempfile("infer"))
  inputs <- read_inputs(run$spec)
  expect_null(inputs$order)  # inference mode trains nothing
  model <- stand_in_model()
  model$load_weights(inputs$weights)
  run_inference(run$spec, inputs$weights, inputs$shards, model$load_weights, model$inference_input, model$predict,
                export_onnx = function(path) stop("no ONNX asked for"), measured = MEASURED)
  x_test <- run$shards$x_test  # 6 samples
  expect_identical(model$inputs, list(x_test[1, , drop = FALSE], x_test[c(1:6, 1:2), ]))
  out <- jsonlite::fromJSON(run$spec$measurements, simplifyVector = FALSE)
  expect_identical(names(out), INFERENCE_KEYS)
  expect_identical(out[c("check", "stack", "model", "dataset", "language_version", "framework_version", "device",
                         "parameter_count")],
                   list(check = "inference", stack = "some-stack", model = "lstm", dataset = "tiny-imdb",
                        language_version = as.character(getRversion()), framework_version = "0", device = "cpu",
                        parameter_count = 7L))
  expect_true(out$startup_seconds > 0 && out$peak_rss_mb > 0)
  expect_identical(vapply(out$batches, `[[`, 0L, "batch_size"), c(1L, 8L))
  expect_identical(vapply(out$batches, `[[`, 0L, "warmup_calls"), c(2L, 2L))
  expect_identical(lengths(lapply(out$batches, `[[`, "call_seconds")), c(3L, 3L))
  expect_true(all(unlist(lapply(out$batches, `[[`, "call_seconds")) >= 0))
  expect_identical(model$calls, 10L)  # (2 untimed + 3 timed) per batch size
  expect_null(out$logits)  # nothing to evaluate
  expect_null(out$onnx_export)
  expect_false(dir.exists(file.path(run$dir, "logits")))
})

test_that("inference mode writes the logits of every bundle it evaluates, named by stack, as a logits bundle", {
  dir <- tempfile("evaluate")
  mspec <- model_spec("lstm", TINY_LSTM)
  other <- initial_weights(mspec, 8L)
  other$head.dense.bias <- c(0.5, 0.25)
  bundles <- c(mine = write_trained_weights(file.path(dir, "mine"), fake_spec(), mspec, initial_weights(mspec, 3L), 1),
               other = write_trained_weights(file.path(dir, "other"), fake_spec(), mspec, other, 1))
  run <- inference_run(file.path(dir, "run"), evaluate = list(list(stack = "some-stack", weights = bundles[["mine"]]),
                                            list(stack = "other-stack", weights = bundles[["other"]])))
  inputs <- read_inputs(run$spec)
  model <- stand_in_model()
  model$load_weights(inputs$weights)
  run_inference(run$spec, inputs$weights, inputs$shards, model$load_weights, model$inference_input, model$predict,
                export_onnx = function(path) stop("no ONNX asked for"), measured = MEASURED)
  out <- jsonlite::fromJSON(run$spec$measurements)
  expect_identical(out$logits, file.path(dir, "run", "logits", "manifest.json"))
  logits <- read_bundle(out$logits, "logits")
  expect_identical(names(logits$arrays), c("some-stack", "other-stack"))
  expect_identical(logits$manifest$meta, list(stack = "some-stack", model = "lstm", dataset = "tiny-imdb"))
  x_test <- run$shards$x_test
  expect_identical(logits$arrays[["other-stack"]], cbind(rowSums(x_test), rep(0.75, 6)))
  expect_identical(dim(logits$arrays[["some-stack"]]), c(6L, 2L))
  expect_identical(model$loaded[[3]], read_initial_weights(bundles[["other"]], mspec))
})

test_that("a bundle to evaluate that is missing, corrupt or of another model stops inference, naming it", {
  dir <- tempfile("bad-bundle")
  mspec <- model_spec("lstm", TINY_LSTM)
  good <- write_trained_weights(file.path(dir, "good"), fake_spec(), mspec, initial_weights(mspec, 3L), 1)
  kernel <- file.path(dirname(good), "lstm.kernel.npy")
  bytes <- readBin(kernel, "raw", file.size(kernel))
  bytes[length(bytes)] <- xor(bytes[length(bytes)], as.raw(1))
  writeBin(bytes, kernel)
  other_model <- write_bundle(file.path(dir, "resnet"), "weights", list(stem.conv.kernel = array(0, c(3, 3, 3, 4))),
                              list())
  missing <- file.path(dir, "missing", "manifest.json")
  for (case in list(c(missing, paste("bundle manifest not found:", missing)),
                    c(good, paste("checksum mismatch for", kernel)),
                    c(other_model, sprintf("weights %s do not fit this lstm", other_model)))) {
    run <- inference_run(tempfile("infer"), evaluate = list(list(stack = "other", weights = case[[1]])))
    inputs <- read_inputs(run$spec)
    model <- stand_in_model()
    expect_error(run_inference(run$spec, inputs$weights, inputs$shards, model$load_weights, model$inference_input,
                               function(x) matrix(0, nrow(x), 2), export_onnx = function(path) NULL,
                               measured = MEASURED),
                 case[[2]], fixed = TRUE)
    expect_false(file.exists(run$spec$measurements))
  }
})

test_that("the ONNX export, with the stack's own weights, is ok, unsupported or failed; the timings stand", {
  dir <- tempfile("onnx")
  mspec <- model_spec("lstm", TINY_LSTM)
  other <- write_trained_weights(file.path(dir, "other"), fake_spec(), mspec, initial_weights(mspec, 8L), 1)
  exports <- list(
    ok = function(path) {
      Sys.sleep(0.01)
      writeLines("onnx", path)
      list(exporter = "stand-in exporter 1.0", opset = 17)
    },
    unsupported = function(path) onnx_unsupported("this framework has no exporter for the LSTM"),
    failed = function(path) stop(paste0("converter crashed: ", strrep("x", 3000), " the end")))
  for (status in names(exports)) {
    path <- file.path(dir, status, "nested", "model.onnx")
    run <- inference_run(tempfile("infer"), evaluate = list(list(stack = "other", weights = other)), onnx = path)
    inputs <- read_inputs(run$spec)
    model <- stand_in_model()
    model$load_weights(inputs$weights)
    export <- exports[[status]]
    messages <- capture_messages(run_inference(
      run$spec, inputs$weights, inputs$shards, model$load_weights, model$inference_input, model$predict,
      export_onnx = function(path) {
        expect_identical(model$w, inputs$weights)  # its own weights again, after the evaluation
        export(path)
      }, measured = MEASURED))
    out <- jsonlite::fromJSON(run$spec$measurements, simplifyVector = FALSE)
    expect_identical(names(out), INFERENCE_KEYS)
    expect_length(out$batches, 2)
    e <- out$onnx_export
    expect_identical(e$status, status)
    if (status == "ok") {
      expect_identical(e[c("exporter", "opset")], list(exporter = "stand-in exporter 1.0", opset = 17L))
      expect_true(e$seconds >= 0.01)
      expect_true(file.exists(path))
    } else if (status == "unsupported") {
      expect_identical(e, list(status = "unsupported", reason = "this framework has no exporter for the LSTM"))
    } else {
      expect_named(e, c("status", "reason"))
      expect_identical(nchar(e$reason), REASON_TAIL)
      expect_match(e$reason, "x the end$")
      expect_match(messages, "ONNX export failed: converter crashed")
    }
  }
})
