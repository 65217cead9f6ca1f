# Loaded by testthat before the tests (run from r/stacks/r-mxnet/tests/testthat): sources
# the shared R library (r/R), then this stack's R files, as run_stack.R does, and the
# shared suite's fixture writers; binds reticulate to the stack's Python (.venvs/mxnet;
# MXNet tests skip, naming why, where it cannot be reached) with one MXNet thread; writes
# small run specs and holds the R reference of the LSTM that the Gluon models are
# checked against.
#
# Twins: tests/stackcheck.py, r/stacks/r-keras/tests/testthat/helper-r-keras.R

STACK_DIR <- normalizePath(file.path("..", ".."))
REPO_ROOT <- normalizePath(file.path(STACK_DIR, "..", "..", ".."))
for (f in c(list.files(file.path(REPO_ROOT, "r", "R"), pattern = "\\.R$", full.names = TRUE),
            list.files(file.path(STACK_DIR, "R"), pattern = "\\.R$", full.names = TRUE),
            file.path(REPO_ROOT, "r", "tests", "testthat", "helper-fixtures.R"))) {
  source(f)
}
bind_stack_python(REPO_ROOT)
MXNET_UNAVAILABLE <- mxnet_unavailable_reason(1L)
MXNET_SKIP_MESSAGE <- paste("MXNet unreachable through reticulate:", MXNET_UNAVAILABLE)
skip_without_mxnet <- function() testthat::skip_if_not(is.null(MXNET_UNAVAILABLE), MXNET_SKIP_MESSAGE)

# A tiny token data set, its shards, weights drawn by the R scheme, an epoch order and a
# run spec; returns list(spec = path, dir, weights, shards (R arrays), order).
write_lstm_run <- function(dir, epochs = 2L, check_steps = 0L, batch_size = 4L, n = 18L) {
  dir.create(dir, recursive = TRUE)
  set.seed(7)
  tokens <- function(k) matrix(sample.int(TINY_LSTM$vocab_size, k * TINY_LSTM$maxlen, replace = TRUE) - 1L, k)
  shards <- list(x_train = tokens(n), y_train = sample(0:1, n, replace = TRUE),
                 x_test = tokens(6L), y_test = sample(0:1, 6L, replace = TRUE))
  weights <- initial_weights(model_spec("lstm", TINY_LSTM), 3L)
  order <- t(replicate(epochs, sample.int(n) - 1L))
  write_npy_fixture(file.path(dir, "order.npy"), order)
  spec <- list(
    spec_version = 2L, stack = "r-mxnet", model = "lstm", dataset = "tiny-imdb", model_config = TINY_LSTM,
    training = list(epochs = epochs, batch_size = batch_size,
                    optimizer = list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8)),
    shards = write_bundle_fixture(file.path(dir, "shards"), "shards", shards,
                                  list(dataset = "tiny-imdb", num_classes = 2L)),
    order = file.path(dir, "order.npy"),
    initial_weights = write_bundle_fixture(file.path(dir, "weights"), "weights", weights, list(model = "lstm")),
    init_seed = 42L, threads = 1L, seed = 42L, device = "cpu", measurements = file.path(dir, "measurements.json"),
    check = if (check_steps > 0) "step_losses" else NULL, check_steps = check_steps)
  write_json_atomic(file.path(dir, "spec.json"), spec)
  list(spec = file.path(dir, "spec.json"), dir = dir, weights = weights, shards = shards, order = order)
}

# Run the entry point in a fresh R process, as the launcher does; returns its exit status.
run_entry_point <- function(spec_path, env = character()) {
  rscript <- file.path(R.home("bin"), "Rscript")
  system2(rscript, c("--vanilla", shQuote(file.path(STACK_DIR, "run_stack.R")), shQuote(spec_path)),
          env = env, stdout = FALSE, stderr = FALSE)
}

# The LSTM forward pass written out in R (docs/models.md): logits [batch, classes] for
# 0-based tokens [batch, maxlen], gates i, f, g, o.
lstm_reference_logits <- function(w, tokens) {
  sigmoid <- function(z) 1 / (1 + exp(-z))
  units <- nrow(w$lstm.recurrent_kernel)
  gate <- function(z, k) z[, (k - 1) * units + seq_len(units), drop = FALSE]
  h <- c <- matrix(0, nrow(tokens), units)
  for (t in seq_len(ncol(tokens))) {
    x <- w$embedding.embeddings[tokens[, t] + 1L, , drop = FALSE]
    z <- x %*% w$lstm.kernel + h %*% w$lstm.recurrent_kernel + matrix(w$lstm.bias, nrow(tokens), 4 * units, byrow = TRUE)
    c <- sigmoid(gate(z, 2)) * c + sigmoid(gate(z, 1)) * tanh(gate(z, 3))
    h <- sigmoid(gate(z, 4)) * tanh(c)
  }
  h %*% w$head.dense.kernel + matrix(w$head.dense.bias, nrow(tokens), length(w$head.dense.bias), byrow = TRUE)
}

# Mean softmax cross-entropy of logits against 0-based labels.
cross_entropy <- function(logits, labels) {
  m <- apply(logits, 1, max)
  mean(log(rowSums(exp(logits - m))) + m - logits[cbind(seq_along(labels), labels + 1L)])
}

# A Gluon network's output for an R array input (inference mode), as an R array.
forward <- function(net, x, dtype) {
  r_value(call_block(net, nd_array(x, dtype, mxnet_context(NULL)))$asnumpy())
}
