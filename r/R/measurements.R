# Measurements (schemas/measurements.schema.json): what a stack writes to the run spec's
# `measurements` path. Raw values only: the launcher derives every statistic, checksum
# and timestamp of the record from them, in Python.
#
# Twins: python/dlrosetta/measurements.py, julia/src/measurements.jl

MEASUREMENTS_VERSION <- 2L
MEASUREMENTS_STATUSES <- c("ok", "skipped")
MEASUREMENTS_FIELDS <- c(
  "measurements_version", "status", "reason", "stack", "model", "dataset", "language_version",
  "framework_version", "device", "parameter_count", "epoch_seconds", "train_loss_per_epoch",
  "test_accuracy_per_epoch", "eval_seconds_per_epoch", "startup_seconds", "peak_rss_mb", "fused_kernel", "kernel_notes")
MEASUREMENTS_REQUIRED <- c("measurements_version", "status", "stack", "model", "dataset")
# What an ok run must have measured.
MEASUREMENTS_REQUIRED_OK <- c(
  "language_version", "framework_version", "device", "parameter_count", "epoch_seconds",
  "train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch", "startup_seconds", "peak_rss_mb")
# Fields that are JSON arrays even when they hold one number.
MEASUREMENTS_ARRAYS <- c("epoch_seconds", "train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch")

#' Write a stack's measurements as JSON, atomically: the fields given (schema names),
#' in schema order, with measurements_version added and reason null for an ok run;
#' fields not given are left out. Checks status and reason as the schema does, and
#' rejects unknown fields and missing ones (NULL counts as missing), as Python's
#' measurements() does. Returns the list written, invisibly.
#' @export
write_measurements <- function(path, ...) {
  fields <- list(...)
  unknown <- setdiff(names(fields), MEASUREMENTS_FIELDS[-1])
  if (length(unknown)) stop(sprintf("measurements have unknown fields %s", paste(sort(unknown), collapse = ", ")))
  if (!isTRUE(fields$status %in% MEASUREMENTS_STATUSES)) {
    stop(sprintf("status must be one of %s, got %s", paste(MEASUREMENTS_STATUSES, collapse = ", "),
                 json_repr(fields$status)))
  }
  if (fields$status == "skipped" && !nzchar(fields$reason %||% "")) stop("skipped measurements need a reason")
  if (fields$status == "ok" && !is.null(fields$reason)) stop("ok measurements have no reason")
  fields["reason"] <- list(fields$reason)
  fields$measurements_version <- MEASUREMENTS_VERSION
  required <- c(MEASUREMENTS_REQUIRED, if (fields$status == "ok") MEASUREMENTS_REQUIRED_OK)
  missing <- required[vapply(required, function(f) is.null(fields[[f]]), TRUE)]
  if (length(missing)) stop(sprintf("%s measurements lack %s", fields$status, paste(missing, collapse = ", ")))
  fields <- fields[intersect(MEASUREMENTS_FIELDS, names(fields))]
  arrays <- intersect(MEASUREMENTS_ARRAYS, names(fields))
  fields[arrays] <- lapply(fields[arrays], function(x) if (is.null(x)) x else I(x))
  write_json_atomic(path, fields)
  invisible(fields)
}
