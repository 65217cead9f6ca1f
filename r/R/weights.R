# Weights bundles: an npy bundle of kind `weights` holding every tensor of a model in the
# canonical layout (docs/stack-contract.md). Initial weights let all stacks start from
# the very same numbers; a training run's trained weights are the same format, so any
# stack loads any other stack's trained model with the same reader. A bundle that does
# not fit the model is rejected by name.
#
# Twins: python/dlrosetta/weights.py, julia/src/weights.jl

#' Read a weights bundle for a model spec (see model_spec): the tensors as a named list
#' in canonical order, rejecting a bundle whose tensors do not fit.
#' @export
read_initial_weights <- function(manifest_path, spec) {
  arrays <- read_bundle(manifest_path, "weights")$arrays
  check_fit(arrays, spec, sprintf("weights %s", manifest_path))
  arrays[param_names(spec)]
}

#' A training run's final weights (docs/stack-contract.md, "Trained weights"): every
#' tensor of `model_spec` (a named list of R arrays in the canonical layout, checked),
#' in the model spec's order, as the float32 weights bundle in `directory`; its meta says
#' what trained them. Returns the manifest's path.
#' @export
write_trained_weights <- function(directory, spec, model_spec, weights, parameter_count) {
  check_fit(weights, model_spec, sprintf("the trained weights of %s", spec$stack))
  arrays <- lapply(weights[param_names(model_spec)], function(w) {
    storage.mode(w) <- "double"  # float32 in the file
    w
  })
  meta <- list(model = model_spec$model, model_config = spec$model_config, seed = as.integer(spec$init_seed),
               parameter_count = as.integer(parameter_count), stack = spec$stack, dataset = spec$dataset,
               epochs = as.integer(spec$training$epochs), trained = TRUE)
  write_bundle(directory, "weights", arrays, meta)
}

# Stop, naming `what`, unless `arrays` hold exactly the tensors of the model spec, each
# of its shape.
check_fit <- function(arrays, spec, what) {
  expected <- stats::setNames(lapply(spec$params, function(p) as.numeric(p$shape)), param_names(spec))
  missing <- setdiff(names(expected), names(arrays))
  extra <- setdiff(names(arrays), names(expected))
  common <- intersect(names(expected), names(arrays))
  wrong <- common[!vapply(common, function(n) identical(as.numeric(npy_shape(arrays[[n]])), expected[[n]]), TRUE)]
  if (length(missing) || length(extra) || length(wrong)) {
    listed <- function(x) sprintf("[%s]", paste(sort(x), collapse = ", "))
    stop(sprintf("%s do not fit this %s: missing %s, unexpected %s, wrong shape %s",
                 what, spec$model, listed(missing), listed(extra), listed(wrong)), call. = FALSE)
  }
}
