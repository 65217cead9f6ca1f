# The training loop every R stack shares; a stack supplies its steps, its evaluation and
# what only it can say (docs/stack-contract.md, "What a stack does"). Every epoch is timed
# whole, the first included; after each, the test split is evaluated outside the epoch's
# stopwatch and timed apart. The raw measurements are written (the launcher derives the
# record), or in check mode the first steps' losses, or in profile mode blocks of steps
# timed with and without the framework's profiler and its trace (run_profile).
#
# Twins: python/dlrosetta/stacks/train.py, julia/stacks/julia-native/src/train.jl

#' The measurements fields every status shares.
#' @export
measurements_base <- function(spec) {
  list(stack = spec$stack, model = spec$model, dataset = spec$dataset, language_version = as.character(getRversion()))
}

#' What every run reads: the initial weights (the spec's file, or drawn by its seed), the
#' shards and the epoch order, each checked (twin of Python's load_inputs).
#' @export
read_inputs <- function(spec) {
  canonical <- model_spec(spec$model, spec$model_config)
  weights <- if (is.null(spec$initial_weights)) initial_weights(canonical, spec$init_seed) else
    read_initial_weights(spec$initial_weights, canonical)
  shards <- read_shards(spec$shards)
  list(weights = weights, shards = shards,
       order = read_order(spec$order, as.integer(spec$training$epochs), length(shards$y_train)))
}

#' Write `skipped` measurements: the stack's framework cannot be reached, `reason` says why.
#' @export
write_skipped <- function(spec, reason) {
  do.call(write_measurements, c(list(spec$measurements, status = "skipped", reason = reason), measurements_base(spec)))
  message(sprintf("[%s] skipped: %s", spec$stack, reason))
  invisible(NULL)
}

#' Train as the spec says and write the measurements (or, in check mode, the step losses;
#' in profile mode, the profile).
#' `train_batches(batches)` runs one optimiser step per row of 0-based sample indices and
#' returns each step's loss (synchronised); `evaluate()` returns the test accuracy, called
#' after every epoch, and must leave training as it was (inference mode, no statistic or
#' optimiser state updated);
#' `measured()` returns the stack's own fields: framework_version, device,
#' parameter_count, fused_kernel, kernel_notes;
#' `trace_block(out_dir)`, needed in profile mode only, returns a context for with() that
#' traces its block with the framework's own profiler and then holds `trace` (the trace's
#' file name in out_dir) and `profiler` (its name and version): Python's
#' dlrosetta.profiler.trace_block, which the stack reaches through its Python binding.
#' @export
run_training <- function(spec, order, train_batches, evaluate, measured, trace_block = NULL) {
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
  do.call(write_measurements, c(
    list(spec$measurements, status = "ok"), measurements_base(spec), measured(),
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
