# The training loop every R stack shares; a stack supplies its steps, its evaluation and
# what only it can say (docs/stack-contract.md, "What a stack does"). Every epoch is timed
# whole, the first included; after each, the test split is evaluated outside the epoch's
# stopwatch and timed apart. The raw measurements are written (the launcher derives the
# record), or in check mode the first steps' losses.
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

#' Train as the spec says and write the measurements (or, in check mode, the step losses).
#' `train_batches(batches)` runs one optimiser step per row of 0-based sample indices and
#' returns each step's loss (synchronised); `evaluate()` returns the test accuracy, called
#' after every epoch, and must leave training as it was (inference mode, no statistic or
#' optimiser state updated);
#' `measured()` returns the stack's own fields: framework_version, device,
#' parameter_count, fused_kernel, kernel_notes.
#' @export
run_training <- function(spec, order, train_batches, evaluate, measured) {
  batch_size <- as.integer(spec$training$batch_size)
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
    message(sprintf("[%s] epoch %d/%d: %.2f s, loss %.4f, test accuracy %.4f", spec$stack, epoch, epochs,
                    timed$seconds, timed$value, evaluation$value))
  }
  do.call(write_measurements, c(
    list(spec$measurements, status = "ok"), measurements_base(spec), measured(),
    list(epoch_seconds = epoch_seconds, train_loss_per_epoch = losses, test_accuracy_per_epoch = accuracies,
         eval_seconds_per_epoch = eval_seconds, startup_seconds = startup, peak_rss_mb = peak_rss_mb())))
  invisible(NULL)
}
