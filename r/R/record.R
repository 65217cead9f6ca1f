# Result records (docs/record.md; schema python/dlrosetta/schemas/record.schema.json):
# every field present, null where not measured, numbers written so that they read back
# as the very same doubles.
#
# Twins: python/dlrosetta/record.py, julia/src/record.jl.

RECORD_SCHEMA_VERSION <- "1.0.0"
RECORD_STATUSES <- c("ok", "skipped", "failed")
RECORD_FIELDS <- c(
  "schema_version", "status", "reason", "stack", "language", "language_version", "framework",
  "framework_version", "backend", "model", "dataset", "hyperparameters", "threads", "seed", "device",
  "host", "created_at", "shards_sha256", "initial_weights_sha256", "parameter_count",
  "train_samples_per_epoch", "epoch_seconds", "warmup_epoch_seconds", "steady_epoch_seconds",
  "steady_samples_per_second", "train_loss_per_epoch", "final_train_loss", "test_accuracy",
  "eval_seconds", "startup_seconds", "peak_rss_mb", "fused_kernel", "kernel_notes", "run_seconds")
# Fields that are JSON arrays even when they hold one number.
RECORD_ARRAYS <- c("epoch_seconds", "train_loss_per_epoch")

#' A record: a named list with every field in schema order; unset fields are NULL.
#' Checks what Python's Record checks on construction (status, reason, field names).
#' @export
make_record <- function(...) {
  fields <- list(...)
  unknown <- setdiff(names(fields), RECORD_FIELDS)
  if (length(unknown)) stop(sprintf("record has unknown fields %s", paste(sort(unknown), collapse = ", ")))
  defaults <- list(schema_version = RECORD_SCHEMA_VERSION, host = Sys.info()[["nodename"]],
                   created_at = format(Sys.time(), "%Y-%m-%dT%H:%M:%S+00:00", tz = "UTC"))
  fields <- c(fields, defaults[setdiff(names(defaults), names(fields))])
  record <- stats::setNames(lapply(RECORD_FIELDS, function(f) fields[[f]]), RECORD_FIELDS)
  if (!isTRUE(record$status %in% RECORD_STATUSES)) {
    stop(sprintf("status must be one of %s, got %s", paste(RECORD_STATUSES, collapse = ", "),
                 json_repr(record$status)))
  }
  if (record$status != "ok" && !nzchar(record$reason %||% "")) stop(sprintf("a %s record needs a reason", record$status))
  if (record$status == "ok" && !is.null(record$reason)) stop("an ok record has no reason")
  record
}

#' The derived timing fields: the first epoch (warm-up, tracing, compilation) apart
#' from the steady epochs, whose mean gives seconds per epoch and samples per second.
#' @export
record_timing_fields <- function(epoch_seconds, samples_per_epoch) {
  steady <- epoch_seconds[-1]
  steady_mean <- if (length(steady)) mean(steady) else NULL
  list(epoch_seconds = epoch_seconds, warmup_epoch_seconds = epoch_seconds[[1]],
       steady_epoch_seconds = steady_mean,
       steady_samples_per_second = if (is.null(steady_mean)) NULL else samples_per_epoch / steady_mean,
       train_samples_per_epoch = as.integer(samples_per_epoch))
}

#' Write a record (see make_record) as JSON, atomically.
#' @export
write_record <- function(path, record) {
  record[RECORD_ARRAYS] <- lapply(record[RECORD_ARRAYS], function(x) if (is.null(x)) x else I(x))
  write_json_atomic(path, record)
}

#' Write any list as JSON through a temporary file renamed into place, so readers never
#' see half a file. Scalars are unboxed (wrap a vector in I() to keep it an array),
#' NULL and NA become null, and doubles keep every bit.
#' @export
write_json_atomic <- function(path, data) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  text <- jsonlite::toJSON(exact_doubles(data), auto_unbox = TRUE, null = "null", na = "null",
                           json_verbatim = TRUE, pretty = TRUE)
  tmp <- paste0(path, ".tmp")
  writeLines(text, tmp)
  if (!file.rename(tmp, path)) stop(sprintf("cannot move %s to %s", tmp, path))
  invisible(path)
}

# jsonlite prints at most 15 significant digits, which does not round-trip every double.
# Doubles are formatted here instead, with the fewest of 15, 16 or 17 digits that read
# back exactly (17 always do); non-finite values as Python's json writes them.
exact_doubles <- function(x) {
  if (is.list(x)) {
    x[] <- lapply(x, exact_doubles)
    return(x)
  }
  if (!is.double(x)) return(x)
  text <- sprintf("%.15g", x)
  for (digits in c(16, 17)) {
    inexact <- which(is.finite(x))
    inexact <- inexact[as.numeric(text[inexact]) != x[inexact]]
    text[inexact] <- sprintf("%.*g", digits, x[inexact])
  }
  text[is.nan(x)] <- "NaN"
  text[x %in% Inf] <- "Infinity"
  text[x %in% -Inf] <- "-Infinity"
  text[is.na(x) & !is.nan(x)] <- "null"
  if (length(x) == 1 && !inherits(x, "AsIs")) return(structure(text, class = "json"))
  structure(sprintf("[%s]", paste(text, collapse = ", ")), class = "json")
}

`%||%` <- function(a, b) if (is.null(a)) b else a
