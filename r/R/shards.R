# The data set shards (docs/shards.md): an npy bundle of the four splits every stack
# trains and evaluates on, read and verified by read_bundle.
#
# Twins: python/dlrosetta/shards.py, julia/src/shards.jl

SHARD_SPLITS <- c("x_train", "y_train", "x_test", "y_test")

#' A data set's shards: list(x_train, y_train, x_test, y_test, meta). Images are double
#' arrays [N, 32, 32, 3] (NHWC), tokens integer [N, maxlen], labels integer vectors.
#' @export
read_shards <- function(manifest_path, verify = TRUE) {
  bundle <- read_bundle(manifest_path, "shards", SHARD_SPLITS, verify = verify)
  c(bundle$arrays, list(meta = bundle$manifest$meta))
}
