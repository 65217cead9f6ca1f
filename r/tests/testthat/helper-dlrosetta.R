# Loaded by testthat before the tests (run from r/tests/testthat): sources the R stack,
# binds reticulate to the stack's Python, and writes small fixtures (npy files, bundles,
# run specs) and the R reference of the LSTM that the Keras models are checked against.
#
# Twins: tests/conftest.py, julia/test/runtests.jl.

R_ROOT <- normalizePath(file.path("..", ".."))
REPO_ROOT <- dirname(R_ROOT)
for (f in list.files(file.path(R_ROOT, "R"), pattern = "\\.R$", full.names = TRUE)) source(f)
bind_stack_python(REPO_ROOT)
if (!nzchar(Sys.getenv("TF_CPP_MIN_LOG_LEVEL"))) Sys.setenv(TF_CPP_MIN_LOG_LEVEL = "1")  # TensorFlow's INFO lines
KERAS_UNAVAILABLE <- keras_unavailable_reason()
KERAS_SKIP_MESSAGE <- paste("Keras unreachable through reticulate:", KERAS_UNAVAILABLE)
skip_without_keras <- function() testthat::skip_if_not(is.null(KERAS_UNAVAILABLE), KERAS_SKIP_MESSAGE)

# An R array or vector as a .npy file (format 1.0, C order), written the way NumPy does:
# the header padded with spaces and "\n" so that the data start at a multiple of 64.
write_npy_fixture <- function(path, x) {
  shape <- if (is.null(dim(x))) length(x) else dim(x)
  dims <- if (length(shape) == 1) sprintf("%d,", shape) else paste(shape, collapse = ", ")
  descr <- if (is.integer(x)) "<i4" else "<f4"
  header <- sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims)
  header <- paste0(header, strrep(" ", (64 - (10 + nchar(header) + 1) %% 64) %% 64), "\n")
  con <- file(path, "wb")
  on.exit(close(con))
  writeBin(c(NPY_MAGIC, as.raw(c(1, 0))), con)
  writeBin(nchar(header), con, size = 2, endian = "little")
  writeBin(charToRaw(header), con)
  values <- if (length(shape) > 1) aperm(x) else x  # row-major: last axis fastest
  writeBin(if (is.integer(x)) as.integer(values) else as.numeric(values), con, size = 4, endian = "little")
  invisible(path)
}

# A bundle (docs/shards.md) of named R arrays; returns the manifest path.
write_bundle_fixture <- function(dir, kind, arrays, meta = list(fixture = TRUE)) {
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  entries <- lapply(names(arrays), function(name) {
    x <- arrays[[name]]
    path <- write_npy_fixture(file.path(dir, paste0(name, ".npy")), x)
    list(name = name, file = basename(path), dtype = npy_dtype(x), shape = I(npy_shape(x)),
         sha256 = sha256_file(path))
  })
  manifest <- file.path(dir, "manifest.json")
  jsonlite::write_json(list(format = paste0("dlrosetta.", kind), format_version = 1L, arrays = entries, meta = meta),
                       manifest, auto_unbox = TRUE, pretty = TRUE, digits = NA)
  manifest
}

TINY_LSTM <- list(vocab_size = 20L, embedding_dim = 5L, units = 4L, maxlen = 6L, num_classes = 2L)

# A tiny token data set, its shards, weights drawn by the R scheme, an epoch order and a
# run spec; returns list(spec = path, dir, weights, shards (R arrays), order).
write_lstm_run <- function(dir, epochs = 2L, check_steps = 0L, batch_size = 4L, n = 18L) {
  dir.create(dir, recursive = TRUE)
  set.seed(7)
  tokens <- function(k) matrix(sample.int(TINY_LSTM$vocab_size, k * TINY_LSTM$maxlen, replace = TRUE) - 1L, k)
  shards <- list(x_train = tokens(n), y_train = sample(0:1, n, replace = TRUE),
                 x_test = tokens(6L), y_test = sample(0:1, 6L, replace = TRUE))
  params <- model_params("lstm", TINY_LSTM)
  weights <- initial_weights(params, 3L)
  order <- t(replicate(epochs, sample.int(n) - 1L))
  write_npy_fixture(file.path(dir, "order.npy"), order)
  spec <- list(
    spec_version = 1L, stack = "r-keras", model = "lstm", dataset = "tiny-imdb", model_config = TINY_LSTM,
    training = list(epochs = epochs, batch_size = batch_size,
                    optimizer = list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8)),
    shards = write_bundle_fixture(file.path(dir, "shards"), "shards", shards,
                                  list(dataset = "tiny-imdb", num_classes = 2L)),
    order = file.path(dir, "order.npy"),
    initial_weights = write_bundle_fixture(file.path(dir, "weights"), "weights", weights, list(model = "lstm")),
    init_seed = 42L, threads = 1L, seed = 42L, device = "cpu", record = file.path(dir, "record.json"),
    check = if (check_steps > 0) "step_losses" else NULL, check_steps = check_steps)
  write_json_atomic(file.path(dir, "spec.json"), spec)
  list(spec = file.path(dir, "spec.json"), dir = dir, weights = weights, shards = shards, order = order)
}

# Run the entry point in a fresh R process, as the launcher does; returns its exit status.
run_entry_point <- function(spec_path, env = character()) {
  rscript <- file.path(R.home("bin"), "Rscript")
  status <- system2(rscript, c("--vanilla", shQuote(file.path(R_ROOT, "inst", "run_stack.R")), shQuote(spec_path)),
                    env = env, stdout = FALSE, stderr = FALSE)
  status
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
