# The run spec (schemas/runspec.schema.json): the one JSON document a stack entry point
# receives (docs/stack-contract.md). Read as a plain named list, checked like the
# Python class. Version 2 renamed `record` to `measurements`: stacks report raw values;
# version 3 added `trained_weights` (where a training run keeps its final weights) and
# inference mode (check "inference", its settings in `inference`).
#
# Twins: python/dlrosetta/runspec.py, julia/src/runspec.jl

RUNSPEC_VERSION <- 3L
RUNSPEC_REQUIRED <- c("stack", "model", "dataset", "model_config", "training", "shards", "order",
                      "initial_weights", "init_seed", "threads", "seed", "device", "measurements")
RUNSPEC_DEFAULTS <- list(check = NULL, check_steps = 0L, trained_weights = NULL, inference = NULL,
                         spec_version = RUNSPEC_VERSION)
RUNSPEC_CHECKS <- c("step_losses", "profile", "inference")  # or NULL: train

#' Read and check a run spec; returns a named list with every key (JSON null = NULL).
#' @export
read_runspec <- function(path) {
  data <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  unknown <- setdiff(names(data), c(RUNSPEC_REQUIRED, names(RUNSPEC_DEFAULTS)))
  if (length(unknown)) {
    stop(sprintf("run spec %s has unknown keys %s", path, paste(sort(unknown), collapse = ", ")), call. = FALSE)
  }
  missing <- setdiff(RUNSPEC_REQUIRED, names(data))
  if (length(missing)) {
    stop(sprintf("run spec %s lacks keys %s", path, paste(missing, collapse = ", ")), call. = FALSE)
  }
  for (key in setdiff(names(RUNSPEC_DEFAULTS), names(data))) data[key] <- list(RUNSPEC_DEFAULTS[[key]])
  if (!identical(as.integer(data$spec_version), RUNSPEC_VERSION)) {
    stop(sprintf("run spec version %s is not supported (expected %d)", json_repr(data$spec_version), RUNSPEC_VERSION),
         call. = FALSE)
  }
  if (!is.null(data$check) && !(is.character(data$check) && data$check %in% RUNSPEC_CHECKS)) {
    quoted <- sprintf("\"%s\"", RUNSPEC_CHECKS)
    stop(sprintf("run spec check must be null, %s or %s, got %s", paste(utils::head(quoted, -1), collapse = ", "),
                 utils::tail(quoted, 1), json_repr(data$check)), call. = FALSE)
  }
  if (identical(data$check, "inference") != !is.null(data$inference)) {
    stop("run spec `inference` is given exactly when check is \"inference\"", call. = FALSE)
  }
  if (!data$device %in% c("cpu", "gpu", "auto")) {
    stop(sprintf("run spec device must be cpu, gpu or auto, got %s", json_repr(data$device)), call. = FALSE)
  }
  data
}
