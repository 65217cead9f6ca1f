# Initial-weights bundles: an npy bundle holding every tensor of a model in the
# canonical layout, so that all stacks can start from the very same numbers
# (docs/stack-contract.md). A bundle that does not fit the model is rejected by name.
#
# Twins: python/dlrosetta/weights.py, julia/src/weights.jl

#' Read an initial-weights bundle for a model spec (see model_spec): the tensors as a
#' named list in canonical order, rejecting a bundle whose tensors do not fit.
#' @export
read_initial_weights <- function(manifest_path, spec) {
  arrays <- read_bundle(manifest_path, "weights")$arrays
  expected <- stats::setNames(lapply(spec$params, function(p) as.numeric(p$shape)), param_names(spec))
  missing <- setdiff(names(expected), names(arrays))
  extra <- setdiff(names(arrays), names(expected))
  common <- intersect(names(expected), names(arrays))
  wrong <- common[!vapply(common, function(n) identical(as.numeric(npy_shape(arrays[[n]])), expected[[n]]), TRUE)]
  if (length(missing) || length(extra) || length(wrong)) {
    listed <- function(x) sprintf("[%s]", paste(sort(x), collapse = ", "))
    stop(sprintf("initial weights %s do not fit this %s: missing %s, unexpected %s, wrong shape %s",
                 manifest_path, spec$model, listed(missing), listed(extra), listed(wrong)), call. = FALSE)
  }
  arrays[names(expected)]
}
