# Test helpers every R stack's suite shares (each stack's helper sources this file after
# setting STACK_DIR and STACK_ID): a tiny LSTM run written to disk, the stack's entry
# point run as the launcher runs it, and the LSTM forward pass written out in R that the
# frameworks' models are checked against.
#
# Twins: tests/stackcheck.py

# A tiny token data set, its shards, weights drawn by the R scheme, an epoch order and a
# run spec (check mode when check_steps > 0, unless `check` says otherwise; inference
# mode with `inference`); returns list(spec = path, dir, weights, shards (R arrays), order).
write_lstm_run <- function(dir, epochs = 2L, check_steps = 0L, batch_size = 4L, n = 18L, stack = STACK_ID,
                           check = if (!is.null(inference)) "inference" else if (check_steps > 0) "step_losses",
                           trained_weights = NULL, inference = NULL) {
  dir.create(dir, recursive = TRUE)
  set.seed(7)
  tokens <- function(k) matrix(sample.int(TINY_LSTM$vocab_size, k * TINY_LSTM$maxlen, replace = TRUE) - 1L, k)
  shards <- list(x_train = tokens(n), y_train = sample(0:1, n, replace = TRUE),
                 x_test = tokens(6L), y_test = sample(0:1, 6L, replace = TRUE))
  weights <- initial_weights(model_spec("lstm", TINY_LSTM), 3L)
  order <- t(replicate(epochs, sample.int(n) - 1L))
  write_npy_fixture(file.path(dir, "order.npy"), order)
  spec <- list(
    spec_version = 3L, stack = stack, model = "lstm", dataset = "tiny-imdb", model_config = TINY_LSTM,
    training = list(epochs = epochs, batch_size = batch_size,
                    optimizer = list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8)),
    shards = write_bundle_fixture(file.path(dir, "shards"), "shards", shards,
                                  list(dataset = "tiny-imdb", num_classes = 2L)),
    order = file.path(dir, "order.npy"),
    initial_weights = write_bundle_fixture(file.path(dir, "weights"), "weights", weights, list(model = "lstm")),
    init_seed = 42L, threads = 1L, seed = 42L, device = "cpu", measurements = file.path(dir, "measurements.json"),
    check = check, check_steps = check_steps, trained_weights = trained_weights, inference = inference)
  write_json_atomic(file.path(dir, "spec.json"), spec)
  list(spec = file.path(dir, "spec.json"), dir = dir, weights = weights, shards = shards, order = order)
}

# Run the entry point in a fresh R process, as the launcher does; returns its exit status.
run_entry_point <- function(spec_path, env = character(), stack_dir = STACK_DIR) {
  rscript <- file.path(R.home("bin"), "Rscript")
  system2(rscript, c("--vanilla", shQuote(file.path(stack_dir, "run_stack.R")), shQuote(spec_path)),
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

# The entry point's contract, for the stack whose helper sourced this file, on the tiny
# LSTM run: check mode's first loss is the R reference's; a training run writes ok raw
# measurements (`framework_version()`, `fused_kernel`, notes matching `kernel_notes`)
# and keeps its trained weights; profile mode writes the profile and a trace of the
# framework's ops; inference mode times, gives the R reference's logits of every bundle
# it evaluates and exports ONNX (its exporter matching `onnx_exporter`) that passes
# onnx's checker; without a usable Python it writes skipped measurements, in every mode;
# a bad spec writes nothing. `skip_without_framework` skips a test where the framework
# cannot be reached.
#' Checks an exported ONNX file against the contract (docs/stack-contract.md, "Inference
#' mode"): onnx's full check, one input `input` whose batch dimension is `batch`, one output
#' `logits`. Returns the input's dimensions for the stack's own checks.
expect_onnx_contract <- function(path) {
  onnx <- reticulate::import("onnx")
  onnx$checker$check_model(path, full_check = TRUE)
  graph <- onnx$load(path)$graph
  first <- function(values) reticulate::py_get_item(values, 0L)
  expect_identical(c(first(graph$input)$name, first(graph$output)$name), c("input", "logits"))
  dims <- first(graph$input)$type$tensor_type$shape$dim
  expect_identical(first(dims)$dim_param, "batch")
  dims
}

test_entry_point_contract <- function(skip_without_framework, framework_version, fused_kernel, kernel_notes,
                                      onnx_exporter) {
  test_that("check mode's first loss is the reference forward pass on the order's first batch", {
    skip_without_framework()
    run <- write_lstm_run(tempfile("check"), epochs = 1L, check_steps = 3L)
    expect_identical(run_entry_point(run$spec), 0L)
    check <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"))
    expect_identical(check$check, "step_losses")
    expect_identical(check$stack, STACK_ID)
    expect_length(check$losses, 3)
    spec <- model_spec("lstm", TINY_LSTM)
    expect_identical(check$parameter_count, as.integer(parameter_count(spec)))
    w <- read_initial_weights(file.path(run$dir, "weights", "manifest.json"), spec)
    first <- run$order[1, 1:4] + 1L
    expected <- cross_entropy(lstm_reference_logits(w, run$shards$x_train[first, ]), run$shards$y_train[first])
    expect_equal(check$losses[[1]], expected, tolerance = 1e-5)
    expect_false(isTRUE(all.equal(check$losses[[2]], check$losses[[1]])))
  })

  test_that("a training run writes ok measurements, raw values only", {
    skip_without_framework()
    run <- write_lstm_run(tempfile("train"), epochs = 2L)
    expect_identical(run_entry_point(run$spec), 0L)
    m <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"), simplifyVector = FALSE)
    expect_identical(names(m), MEASUREMENTS_FIELDS)  # every field measured, none derived
    expect_identical(m$status, "ok")
    expect_null(m$reason)
    expect_identical(c(m$stack, m$model, m$dataset), c(STACK_ID, "lstm", "tiny-imdb"))
    expect_identical(m$language_version, as.character(getRversion()))
    expect_identical(m$framework_version, framework_version())
    expect_identical(m$device, "cpu")
    expect_length(m$epoch_seconds, 2)
    expect_length(m$train_loss_per_epoch, 2)
    expect_true(all(unlist(m$epoch_seconds) > 0))
    expect_identical(m$parameter_count, as.integer(parameter_count(model_spec("lstm", TINY_LSTM))))
    accuracy <- unlist(m$test_accuracy_per_epoch)  # after each epoch
    expect_length(accuracy, 2)
    expect_true(all(accuracy >= 0 & accuracy <= 1))
    expect_length(m$eval_seconds_per_epoch, 2)
    expect_true(all(unlist(m$eval_seconds_per_epoch) >= 0))
    expect_true(m$startup_seconds > 0 && m$peak_rss_mb > 0)
    expect_identical(m$fused_kernel, fused_kernel)
    expect_match(m$kernel_notes, kernel_notes, fixed = TRUE)
  })

  test_that("a training run that names trained_weights keeps its final weights as a canonical bundle", {
    skip_without_framework()
    dir <- tempfile("trained")
    run <- write_lstm_run(file.path(dir, "run"), epochs = 2L, trained_weights = file.path(dir, "trained"))
    expect_identical(run_entry_point(run$spec), 0L)
    expect_identical(jsonlite::fromJSON(file.path(run$dir, "measurements.json"))$status, "ok")
    spec <- model_spec("lstm", TINY_LSTM)
    manifest <- file.path(dir, "trained", "manifest.json")
    trained <- read_initial_weights(manifest, spec)  # checksums, names and shapes
    expect_identical(names(trained), param_names(spec))
    expect_identical(read_bundle(manifest, "weights")$manifest$meta, list(
      model = "lstm", model_config = TINY_LSTM, seed = 42L, parameter_count = as.integer(parameter_count(spec)),
      stack = STACK_ID, dataset = "tiny-imdb", epochs = 2L, trained = TRUE))
    same <- vapply(names(trained), function(n) isTRUE(all.equal(as.vector(trained[[n]]), as.vector(run$weights[[n]]))),
                   TRUE)
    expect_false(any(same))  # every tensor of the LSTM is trained
  })

  test_that("inference mode times its calls, gives the reference logits of every bundle, exports ONNX", {
    skip_without_framework()
    dir <- tempfile("inference")
    trained <- write_lstm_run(file.path(dir, "train"), epochs = 1L, trained_weights = file.path(dir, "trained"))
    expect_identical(run_entry_point(trained$spec), 0L)
    bundles <- list(list(stack = STACK_ID, weights = file.path(dir, "trained", "manifest.json")),
                    list(stack = "initial", weights = file.path(dir, "train", "weights", "manifest.json")))
    run <- write_lstm_run(file.path(dir, "infer"), epochs = 1L, inference = list(
      batch_sizes = c(1L, 8L), warmup_calls = 1L, min_calls = 2L, max_calls = 3L, min_seconds = 0,
      evaluate = bundles, logits = file.path(dir, "logits"), onnx = file.path(dir, "onnx", "model.onnx")))
    spec <- jsonlite::fromJSON(run$spec, simplifyVector = FALSE)
    spec$initial_weights <- bundles[[1]]$weights  # its own trained weights
    write_json_atomic(run$spec, spec)
    expect_identical(run_entry_point(run$spec), 0L)
    out <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"), simplifyVector = FALSE)
    expect_named(out, c("check", "stack", "model", "dataset", "language_version", "framework_version", "device",
                        "parameter_count", "startup_seconds", "peak_rss_mb", "batches", "logits", "onnx_export"))
    expect_identical(out[c("check", "stack", "model", "framework_version", "device", "parameter_count")],
                     list(check = "inference", stack = STACK_ID, model = "lstm", framework_version = framework_version(),
                          device = "cpu", parameter_count = as.integer(parameter_count(model_spec("lstm", TINY_LSTM)))))
    expect_identical(vapply(out$batches, `[[`, 0L, "batch_size"), c(1L, 8L))
    for (b in out$batches) {
      expect_identical(b$warmup_calls, 1L)
      expect_length(b$call_seconds, 2)
      expect_true(all(unlist(b$call_seconds) > 0))
    }
    logits <- read_bundle(out$logits, "logits")
    expect_identical(logits$manifest$meta, list(stack = STACK_ID, model = "lstm", dataset = "tiny-imdb"))
    for (b in bundles) {
      w <- read_initial_weights(b$weights, model_spec("lstm", TINY_LSTM))
      expect_equal(logits$arrays[[b$stack]], lstm_reference_logits(w, run$shards$x_test), tolerance = 1e-5,
                   label = b$stack)
    }
    export <- out$onnx_export
    expect_identical(export$status, "ok", label = export$reason %||% "the export's status")
    expect_match(export$exporter, onnx_exporter)
    expect_true(export$opset >= 7 && export$seconds > 0)
    onnx <- reticulate::import("onnx")
    onnx$checker$check_model(file.path(dir, "onnx", "model.onnx"), full_check = TRUE)
    graph <- onnx$load(file.path(dir, "onnx", "model.onnx"))$graph
    expect_identical(c(reticulate::py_get_item(graph$input, 0L)$name, reticulate::py_get_item(graph$output, 0L)$name),
                     c("input", "logits"))
  })

  test_that("profile mode writes the profile and a Chrome trace of the framework's ops beside it", {
    skip_without_framework()
    run <- write_lstm_run(tempfile("profile"), epochs = 1L, check_steps = 2L, check = "profile")  # 4 batches
    expect_identical(run_entry_point(run$spec), 0L)
    p <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"))
    expect_named(p, c("check", "stack", "model", "steps", "profiler", "unprofiled_seconds", "profiled_seconds",
                      "trace", "parameter_count", "framework_version"))
    expect_identical(c(p$check, p$stack, p$model, p$framework_version),
                     c("profile", STACK_ID, "lstm", framework_version()))
    expect_identical(c(p$steps, p$parameter_count), c(2L, as.integer(parameter_count(model_spec("lstm", TINY_LSTM)))))
    expect_true(p$unprofiled_seconds > 0 && p$profiled_seconds > 0)
    path <- file.path(run$dir, p$trace)
    trace <- jsonlite::fromJSON(memDecompress(readBin(path, "raw", file.size(path)), "gzip", asChar = TRUE))
    events <- if (is.data.frame(trace)) trace else trace$traceEvents
    ops <- events[events$ph %in% "X", ]
    expect_gt(nrow(ops), 0)
    expect_true(all(nzchar(ops$name) & ops$dur >= 0))
    expect_setequal(list.files(run$dir, all.files = TRUE, no.. = TRUE),
                    c("measurements.json", "order.npy", "shards", "spec.json", "weights", p$trace))
  })

  test_that("without a usable Python the stack writes skipped measurements and exits 0, in every mode", {
    missing_python <- file.path(tempdir(), "no-such-env", "bin", "python")
    inference <- list(batch_sizes = I(1L), warmup_calls = 0L, min_calls = 1L, max_calls = 1L, min_seconds = 0,
                      evaluate = list(), logits = NULL, onnx = NULL)
    for (run in list(write_lstm_run(tempfile("skip"), epochs = 1L),
                     write_lstm_run(tempfile("skip-inference"), epochs = 1L, inference = inference))) {
      expect_identical(run_entry_point(run$spec, env = paste0("RETICULATE_PYTHON=", missing_python)), 0L)
      m <- jsonlite::fromJSON(file.path(run$dir, "measurements.json"), simplifyVector = FALSE)
      expect_identical(m$status, "skipped")
      expect_match(m$reason, missing_python, fixed = TRUE)
      expect_identical(names(m), c("measurements_version", "status", "reason", "stack", "model", "dataset",
                                   "language_version"))
    }
  })

  test_that("a spec the stack cannot run exits non-zero, writing nothing", {
    run <- write_lstm_run(tempfile("bad"), epochs = 1L)
    spec <- jsonlite::fromJSON(run$spec, simplifyVector = FALSE)
    spec$spec_version <- 1L
    write_json_atomic(run$spec, spec)
    expect_false(identical(run_entry_point(run$spec), 0L))
    expect_false(file.exists(file.path(run$dir, "measurements.json")))
  })
}
