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

#' Profile mode's three blocks of `steps` rows of epoch 1's batches: list(warm_up,
#' unprofiled, profiled), rows 1..steps, steps+1..2*steps and 2*steps+1..3*steps, taken
#' cyclically so that an epoch of fewer than 3*steps batches still fills them; the rows
#' of Python's profile_blocks.
#' @export
profile_blocks <- function(order, batch_size, steps) {
  rows <- epoch_batches(order, 1L, batch_size)
  if (steps < 1 || nrow(rows) == 0) {
    stop(sprintf("profile blocks need steps >= 1 and a full batch; got %d steps, %d batches of %d",
                 as.integer(steps), nrow(rows), as.integer(batch_size)), call. = FALSE)
  }
  picks <- (seq_len(3L * steps) - 1L) %% nrow(rows) + 1L
  block <- function(k) rows[picks[k * steps + seq_len(steps)], , drop = FALSE]
  list(warm_up = block(0L), unprofiled = block(1L), profiled = block(2L))
}
