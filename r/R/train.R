# The loop every R stack shares; a stack supplies its steps, its forward pass and what
# only it can say (docs/stack-contract.md, "What a stack does"). Every epoch is timed
# whole, the first included; after each, the test split is evaluated outside the epoch's
# stopwatch and timed apart; after the last, the trained weights are kept when the spec
# asks (a canonical weights bundle). The raw measurements are written (the launcher
# derives the record), or in check mode the first steps' losses, or in profile mode
# blocks of steps timed with and without the framework's profiler and its trace
# (run_profile), or in inference mode timed forward calls, the logits of other stacks'
# trained weights and an ONNX export (run_inference).
#
# Twins: python/dlrosetta/stacks/train.py, julia/stacks/julia-native/src/train.jl

# Test samples per forward call when the whole split is evaluated: bounds the
# activations' memory on any device.
EVAL_BATCH <- 1000L
# Characters of an export's error kept as its failure reason.
REASON_TAIL <- 2000L

#' The measurements fields every status shares.
#' @export
measurements_base <- function(spec) {
  list(stack = spec$stack, model = spec$model, dataset = spec$dataset, language_version = as.character(getRversion()))
}

#' What every run reads: the initial weights (the spec's file, or drawn by its seed), the
#' shards and the epoch order (NULL in inference mode, which trains nothing), each
#' checked (twin of Python's load_inputs).
#' @export
read_inputs <- function(spec) {
  canonical <- model_spec(spec$model, spec$model_config)
  weights <- if (is.null(spec$initial_weights)) initial_weights(canonical, spec$init_seed) else
    read_initial_weights(spec$initial_weights, canonical)
  shards <- read_shards(spec$shards)
  order <- if (!identical(spec$check, "inference")) {
    read_order(spec$order, as.integer(spec$training$epochs), length(shards$y_train))
  }
  list(weights = weights, shards = shards, order = order)
}

#' Write `skipped` measurements: the stack's framework cannot be reached, `reason` says why.
#' @export
write_skipped <- function(spec, reason) {
  do.call(write_measurements, c(list(spec$measurements, status = "skipped", reason = reason), measurements_base(spec)))
  message(sprintf("[%s] skipped: %s", spec$stack, reason))
  invisible(NULL)
}

#' Train as the spec says and write the measurements (or, in check mode, the step losses;
#' in profile mode, the profile); after the last epoch, write the trained weights when
#' the spec names `trained_weights`.
#' `train_batches(batches)` runs one optimiser step per row of 0-based sample indices and
#' returns each step's loss (synchronised); `evaluate()` returns the test accuracy, called
#' after every epoch, and must leave training as it was (inference mode, no statistic or
#' optimiser state updated; test_accuracy builds it from the stack's forward pass);
#' `measured()` returns the stack's own fields: framework_version, device,
#' parameter_count, fused_kernel, kernel_notes;
#' `trace_block(out_dir)`, needed in profile mode only, returns a context for with() that
#' traces its block with the framework's own profiler and then holds `trace` (the trace's
#' file name in out_dir) and `profiler` (its name and version): Python's
#' dlrosetta.profiler.trace_block, which the stack reaches through its Python binding;
#' `canonical_weights()`, needed when the spec names `trained_weights`, returns every
#' tensor of the model spec as it is now (BN moving statistics included), canonical
#' layout, a named list of R arrays.
#' @export
run_training <- function(spec, order, train_batches, evaluate, measured, trace_block = NULL,
                         canonical_weights = NULL) {
  batch_size <- as.integer(spec$training$batch_size)
  if (identical(spec$check, "profile")) return(run_profile(spec, order, train_batches, measured, trace_block))
  if (identical(spec$check, "step_losses")) {
    batches <- epoch_batches(order, 1L, batch_size)
    batches <- batches[seq_len(min(spec$check_steps, nrow(batches))), , drop = FALSE]
    write_json_atomic(spec$measurements, list(check = spec$check, stack = spec$stack,
                                              losses = I(train_batches(batches)),
                                              parameter_count = measured()$parameter_count))
    return(invisible(NULL))
  }
  startup <- process_age_seconds()
  epochs <- as.integer(spec$training$epochs)
  epoch_seconds <- losses <- accuracies <- eval_seconds <- numeric(epochs)
  for (epoch in seq_len(epochs)) {
    timed <- stopwatch(mean(train_batches(epoch_batches(order, epoch, batch_size))))
    epoch_seconds[epoch] <- timed$seconds
    losses[epoch] <- timed$value
    evaluation <- stopwatch(evaluate())
    accuracies[epoch] <- evaluation$value
    eval_seconds[epoch] <- evaluation$seconds
    message(epoch_line(spec$stack, epochs, epoch_seconds[seq_len(epoch)], eval_seconds[seq_len(epoch)],
                       timed$value, evaluation$value, length(epoch_batches(order, epoch, batch_size))))
  }
  own <- measured()
  if (!is.null(spec$trained_weights)) {
    write_trained_weights(spec$trained_weights, spec, model_spec(spec$model, spec$model_config), canonical_weights(),
                          own$parameter_count)
  }
  do.call(write_measurements, c(
    list(spec$measurements, status = "ok"), measurements_base(spec), own,
    list(epoch_seconds = epoch_seconds, train_loss_per_epoch = losses, test_accuracy_per_epoch = accuracies,
         eval_seconds_per_epoch = eval_seconds, startup_seconds = startup, peak_rss_mb = peak_rss_mb())))
  invisible(NULL)
}

#' The progress line printed after each epoch (docs/stack-contract.md, "The epoch line";
#' `dlrosetta status` reads it), as Python's epoch_line in python/dlrosetta/stacks/train.py.
#' Time left: the epochs left times the mean epoch plus the mean evaluation so far, each
#' over the epochs after the first once there are two.
epoch_line <- function(stack, epochs, epoch_seconds, eval_seconds, loss, accuracy, samples) {
  per <- function(x) if (length(x) > 1) mean(x[-1]) else x[1]
  done <- length(epoch_seconds)
  seconds <- epoch_seconds[done]
  left <- (epochs - done) * (per(epoch_seconds) + per(eval_seconds))
  rate <- if (seconds > 0) samples / seconds else Inf
  sprintf("[%s] epoch %d/%d: %.2f s, loss %.4f, %.0f samples/s, test accuracy %.4f, run time left ~%.0f s",
          stack, done, as.integer(epochs), seconds, loss, rate, accuracy, left)
}

# Profile mode (docs/profile.md): one block of steps to warm up (compilation,
# allocation; not timed), the next block timed plain, the last timed inside the
# profiler's trace (so its start, stop and export are not timed), which goes beside the
# profile JSON. Twin of Python's profile().
run_profile <- function(spec, order, train_batches, measured, trace_block) {
  steps <- as.integer(spec$check_steps)
  blocks <- profile_blocks(order, as.integer(spec$training$batch_size), steps)
  train_batches(blocks$warm_up)
  unprofiled <- stopwatch(train_batches(blocks$unprofiled))
  tracer <- trace_block(dirname(spec$measurements))
  profiled <- with(tracer, stopwatch(train_batches(blocks$profiled)))
  own <- measured()
  write_json_atomic(spec$measurements, list(
    check = spec$check, stack = spec$stack, model = spec$model, steps = steps, profiler = tracer$profiler,
    unprofiled_seconds = unprofiled$seconds, profiled_seconds = profiled$seconds, trace = tracer$trace,
    parameter_count = own$parameter_count, framework_version = own$framework_version))
  invisible(NULL)
}

#' The test split's inputs for the stack's forward pass, made once: chunks of EVAL_BATCH
#' samples (rows of x, the shards' array), each through the stack's inference_input.
#' @export
test_inputs <- function(inference_input, x) {
  n <- npy_shape(x)[1]
  lapply(seq(1L, n, by = EVAL_BATCH), function(first) {
    inference_input(take_rows(x, first:min(first + EVAL_BATCH - 1L, n)))
  })
}

#' The logits of the whole test split ([n_test, classes], rows in its order): the stack's
#' `predict(input)` on each of test_inputs' chunks.
#' @export
test_logits <- function(predict, inputs) do.call(rbind, lapply(inputs, predict))

#' Accuracy of the stack's forward pass on the test split (inputs from test_inputs, y its
#' 0-based labels): the prediction is the first largest logit, as NumPy's argmax.
#' @export
test_accuracy <- function(predict, inputs, y) {
  mean(max.col(test_logits(predict, inputs), ties.method = "first") - 1L == y)
}

# Rows of an array (the first axis; elements of a vector), every other axis whole.
take_rows <- function(x, rows) {
  if (is.null(dim(x))) return(x[rows])
  do.call(`[`, c(list(x, rows), rep(list(TRUE), length(dim(x)) - 1L), list(drop = FALSE)))
}

#' Inference mode (docs/stack-contract.md, "Inference mode"), with the model built and
#' `weights` (its own trained weights, from read_inputs) loaded: times forward calls per
#' batch size, computes the test logits of each bundle to evaluate and writes them as a
#' logits bundle, exports ONNX with its own weights; then writes the inference document
#' to the measurements path. The stack supplies:
#' `load_weights(weights)` sets every tensor of the model from canonical weights (a named
#' list of R arrays, as read_initial_weights returns);
#' `inference_input(x)` makes rows of the shards' test array (NHWC float32 images, int32
#' tokens) the input `predict` takes, on the framework's device;
#' `predict(input)` is one forward call in inference mode, returning the logits as an R
#' matrix [n, classes] (so the work is done when it returns), leaving the model as it was;
#' `export_onnx(path)` writes the model with its current weights as ONNX (input `input`,
#' the shards' layout and dtype; output `logits`; batch dimension dynamic) and returns
#' list(exporter, opset), or signals onnx_unsupported(reason) where the framework cannot;
#' `measured()` as for run_training.
#' @export
run_inference <- function(spec, weights, shards, load_weights, inference_input, predict, export_onnx, measured) {
  inference <- spec$inference
  startup <- process_age_seconds()
  n_test <- length(shards$y_test)
  batches <- lapply(inference$batch_sizes, function(batch_size) {
    input <- inference_input(take_rows(shards$x_test, (seq_len(batch_size) - 1L) %% n_test + 1L))
    seconds <- time_calls(function() predict(input), inference$warmup_calls, inference$min_calls,
                          inference$max_calls, inference$min_seconds)
    list(batch_size = batch_size, warmup_calls = inference$warmup_calls, call_seconds = I(seconds))
  })

  logits <- NULL
  if (length(inference$evaluate)) {
    canonical <- model_spec(spec$model, spec$model_config)
    inputs <- test_inputs(inference_input, shards$x_test)
    evaluated <- lapply(inference$evaluate, function(entry) {
      load_weights(read_initial_weights(entry$weights, canonical))
      test_logits(predict, inputs)
    })
    names(evaluated) <- vapply(inference$evaluate, `[[`, "", "stack")
    logits <- write_bundle(inference$logits, "logits", evaluated,
                           list(stack = spec$stack, model = spec$model, dataset = spec$dataset))
  }

  onnx_export <- NULL
  if (!is.null(inference$onnx)) {
    load_weights(weights)
    onnx_export <- export_entry(export_onnx, inference$onnx)
  }

  own <- measured()
  write_json_atomic(spec$measurements, c(
    list(check = spec$check), measurements_base(spec), own[c("framework_version", "device", "parameter_count")],
    list(startup_seconds = startup, peak_rss_mb = peak_rss_mb(), batches = batches, logits = logits,
         onnx_export = onnx_export)))
  invisible(NULL)
}

# Calls of `call()`: `untimed` first (compilation, allocation), then timed calls, each on
# its own clock, until at least min_calls calls and min_seconds seconds (summed over the
# calls), or max_calls calls. Returns the timed calls' seconds.
time_calls <- function(call, untimed, min_calls, max_calls, min_seconds) {
  for (i in seq_len(untimed)) call()
  seconds <- numeric(max_calls)
  n <- 0L
  while (n < max_calls && (n < min_calls || sum(seconds) < min_seconds)) {
    n <- n + 1L
    seconds[n] <- stopwatch(call())$seconds
  }
  seconds[seq_len(n)]
}

#' Signal, from a stack's export_onnx, that its framework cannot write this model as
#' ONNX; `reason` says why (the export's status is then `unsupported`).
#' @export
onnx_unsupported <- function(reason) {
  stop(structure(class = c("onnx_unsupported", "error", "condition"), list(message = reason, call = NULL)))
}

# The `onnx_export` entry: ok with exporter, opset and seconds; unsupported where the
# framework cannot; failed with the error's tail (also printed for the log) otherwise.
export_entry <- function(export_onnx, path) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  tryCatch({
    timed <- stopwatch(export_onnx(path))
    list(status = "ok", exporter = timed$value$exporter, opset = as.integer(timed$value$opset),
         seconds = timed$seconds)
  }, onnx_unsupported = function(e) list(status = "unsupported", reason = conditionMessage(e)),
  error = function(e) {
    error <- conditionMessage(e)
    message(sprintf("ONNX export failed: %s", error))
    list(status = "failed", reason = substring(error, max(1L, nchar(error) - REASON_TAIL + 1L)))
  })
}
