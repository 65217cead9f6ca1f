# The epoch order (docs/shards.md, "Epoch order"): an int32 .npy whose row e is epoch
# e's permutation of the 0-based training indices, drawn once by NumPy and read by
# every stack, so all languages visit the same batches in the same order.
#
# Twins: python/dlrosetta/order.py, julia/src/order.jl

#' Read the epoch order, rejecting one that does not cover `epochs` epochs of
#' `n_train` training samples: an integer matrix [epochs or more, n_train].
#' @export
read_order <- function(path, epochs, n_train) {
  order <- read_npy(path)
  if (length(dim(order)) != 2 || nrow(order) < epochs || ncol(order) != n_train) {
    stop(sprintf("epoch order %s has shape %s; need at least %d epochs of %d indices",
                 path, shape_string(npy_shape(order)), as.integer(epochs), as.integer(n_train)), call. = FALSE)
  }
  order
}

#' The epoch's batches: its permutation (0-based sample indices) cut into full batches,
#' one per row; the last partial batch is dropped, identically in every stack.
#' @export
epoch_batches <- function(order, epoch, batch_size) {
  row <- order[epoch, ]
  steps <- length(row) %/% batch_size
  matrix(row[seq_len(steps * batch_size)], nrow = steps, ncol = batch_size, byrow = TRUE)
}
