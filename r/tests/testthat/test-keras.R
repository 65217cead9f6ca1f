# Twins: tests/test_keras_stack.py (python/dlrosetta/stacks/keras), tests/test_stacks_base.py.

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

test_that("R arrays become C-ordered NumPy arrays with the same indexing", {
  skip_without_keras()
  x <- array(seq_len(24) - 1L, dim = c(2, 3, 4))
  a <- as_numpy(x, "float32")
  expect_true(reticulate::py_to_r(a$flags$c_contiguous))
  expect_identical(reticulate::py_to_r(a$dtype$name), "float32")
  expect_identical(as.vector(reticulate::py_to_r(a$ravel())), as.numeric(aperm(x)))  # row-major order
  expect_identical(reticulate::py_to_r(as_numpy(c(3L, 1L), "int32")$shape), list(2L))
})

test_that("kernel notes come from the Python Keras stack for the backend, model and device", {
  skip_without_keras()
  sys <- reticulate::import("sys", convert = FALSE)
  sys$path$insert(0L, file.path(REPO_ROOT, "python"))
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
