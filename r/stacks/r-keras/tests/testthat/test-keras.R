# Twins: tests/test_stacks_python.py

test_that("canonical names map to Keras layer/variable keys", {
  expect_identical(layer_name("stage2.block1.shortcut.bn"), "stage2_block1_shortcut_bn")
  expect_identical(keras_variable_key(c("stem.bn.moving_mean", "lstm.recurrent_kernel")),
                   c("stem_bn/moving_mean", "lstm/recurrent_kernel"))
})

test_that("the device follows the spec and what the backend sees", {
  expect_null(pick_accelerator("cpu", "H100"))
  expect_null(pick_accelerator("auto", NULL))
  expect_identical(pick_accelerator("auto", "H100"), "H100")
  expect_identical(pick_accelerator("gpu", "H100"), "H100")
  expect_error(pick_accelerator("gpu", NULL), "asks for a GPU, but Keras's .* backend sees none")
})

test_that("the backend is KERAS_BACKEND's, tensorflow by default", {
  withr::local_envvar(KERAS_BACKEND = NA)
  expect_identical(keras_backend(), "tensorflow")
  withr::local_envvar(KERAS_BACKEND = "jax")
  expect_identical(keras_backend(), "jax")
})

test_that("R arrays become C-ordered NumPy arrays with the same indexing", {
  skip_without_keras()
  x <- array(seq_len(24) - 1L, dim = c(2, 3, 4))
  a <- as_numpy(x, "float32")
  expect_true(reticulate::py_to_r(a$flags$c_contiguous))
  expect_identical(reticulate::py_to_r(a$dtype$name), "float32")
  expect_identical(as.vector(reticulate::py_to_r(a$ravel())), as.numeric(aperm(x)))  # row-major order
  expect_identical(reticulate::py_to_r(as_numpy(c(3L, 1L), "int32")$shape), list(2L))
})

test_that("canonical weights load into the Keras model by name and read back", {
  skip_without_keras()
  spec <- model_spec("lstm", TINY_LSTM)
  w <- read_initial_weights(write_bundle_fixture(tempfile(), "weights", initial_weights(spec, 5L)), spec)
  model <- build_lstm(TINY_LSTM)
  load_keras_weights(model, w)
  back <- lapply(keras_variables(model), function(v) reticulate::py_to_r(v$numpy()))
  for (name in names(w)) expect_identical(as.vector(back[[keras_variable_key(name)]]), as.vector(w[[name]]), label = name)
  expect_identical(dim(back[["lstm/kernel"]]), dim(w$lstm.kernel))
  expect_error(load_keras_weights(model, w[-1]), "no tensor for variables \\[embedding/embeddings\\]")
  stray <- c(w, list(lstm.peephole = 1))
  expect_error(load_keras_weights(model, stray), "no Keras variable for tensors \\[lstm.peephole\\]")
})

test_that("kernel notes come from the Python Keras stack for the backend, model and device", {
  skip_without_keras()
  step <- c(tensorflow = "tf.function", jax = "jax.jit", torch = "eager")
  for (backend in names(step)) {
    withr::local_envvar(KERAS_BACKEND = backend)
    lstm_cpu <- kernel_info("lstm", NULL)
    expect_false(lstm_cpu$fused_kernel)
    expect_match(lstm_cpu$kernel_notes, "Keras LSTM on CPU", fixed = TRUE)
    expect_match(lstm_cpu$kernel_notes, step[[backend]], fixed = TRUE)
    expect_match(kernel_info("resnet", NULL)$kernel_notes, "convolutions")
    gpu <- kernel_info("resnet", "H100")
    expect_true(gpu$fused_kernel)
    expect_match(gpu$kernel_notes, "cuDNN", fixed = TRUE)
  }
})

test_that("canonical weights loaded into the Keras model come back out as the same arrays", {
  skip_without_keras()
  for (model in c("lstm", "resnet")) {
    cfg <- if (model == "lstm") TINY_LSTM else list(depth = 8L, width = 4L, shortcut = "B", num_classes = 3L,
                                                    image_size = 8L)
    spec <- model_spec(model, cfg)
    w <- read_initial_weights(write_bundle_fixture(tempfile(), "weights", initial_weights(spec, 5L)), spec)
    net <- build_model(model, cfg)
    load_keras_weights(net, w)
    back <- canonical_keras_weights(net, param_names(spec))
    expect_identical(names(back), param_names(spec))
    for (name in names(w)) {
      expect_identical(as.numeric(npy_shape(back[[name]])), as.numeric(npy_shape(w[[name]])), label = name)
      expect_identical(as.vector(back[[name]]), as.vector(w[[name]]), label = name)
    }
  }
})

test_that("the forward pass takes rows of the shards' arrays and gives logits as an R matrix", {
  skip_without_keras()
  w <- initial_weights(model_spec("lstm", TINY_LSTM), 9L)
  model <- build_lstm(TINY_LSTM)
  load_keras_weights(model, w)
  set.seed(3)
  tokens <- matrix(sample.int(20L, 4 * 6, replace = TRUE) - 1L, 4)
  logits <- keras_predict(model, keras_input(tokens))
  expect_true(is.matrix(logits) && is.double(logits))
  expect_equal(logits, lstm_reference_logits(w, tokens), tolerance = 1e-5)
})

test_that("the ONNX export is the Python Keras stack's: input `input`, output `logits`, the batch free", {
  skip_without_keras()
  model <- build_resnet(list(depth = 8L, width = 2L, shortcut = "A", num_classes = 3L, image_size = 4L))
  path <- tempfile(fileext = ".onnx")
  export <- export_keras_onnx(model, path)
  expect_match(export$exporter, "^keras .* model.export \\(tf2onnx ")
  expect_identical(export$opset, 18L)
  expect_onnx_contract(path)
})
