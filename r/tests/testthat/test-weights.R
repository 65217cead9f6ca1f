# Twins: tests/test_models_spec.py, tests/test_weights.py, julia/test/test_weights.jl.

configs <- list(
  list("resnet", list(depth = 8L, width = 16L, shortcut = "A", num_classes = 10L), 75290),
  list("resnet", list(depth = 20L, width = 16L, shortcut = "A", num_classes = 10L), 269722),
  list("resnet", list(depth = 20L, width = 16L, shortcut = "B", num_classes = 10L), 272474),
  list("lstm", list(vocab_size = 30000L, embedding_dim = 125L, units = 100L, maxlen = 150L, num_classes = 2L), 3840602))

test_that("parameter counts are those of docs/models.md", {
  for (c in configs) expect_identical(parameter_count(model_params(c[[1]], c[[2]])), c[[3]])
  expect_error(model_params("resnet", list(depth = 10L, width = 16L, shortcut = "A", num_classes = 10L)), "6n\\+2")
  expect_error(model_params("vit", list()), "unknown model 'vit'")
})

test_that("tensor names, shapes, inits and trainability mirror python/dlrosetta/models/spec.py", {
  skip_without_keras()
  sys <- reticulate::import("sys", convert = FALSE)
  sys$path$insert(0L, file.path(REPO_ROOT, "python"))
  spec_py <- reticulate::import("dlrosetta.models.spec")
  for (c in configs) {
    py <- spec_py$model_spec(c[[1]], c[[2]])$params
    r <- model_params(c[[1]], c[[2]])
    expect_identical(vapply(r, `[[`, "", "name"), vapply(py, function(p) p$name, ""))
    for (i in seq_along(r)) {
      expect_identical(r[[i]]$shape, as.integer(unlist(py[[i]]$shape)), label = r[[i]]$name)
      expect_identical(r[[i]]$trainable, py[[i]]$trainable, label = r[[i]]$name)
      init <- if (is.null(r[[i]]$limit)) r[[i]]$init else sprintf("uniform:%.17g", r[[i]]$limit)
      py_init <- py[[i]]$init
      if (startsWith(py_init, "uniform:")) py_init <- sprintf("uniform:%.17g", as.numeric(sub("uniform:", "", py_init)))
      expect_identical(init, py_init, label = r[[i]]$name)
    }
  }
})

test_that("drawn weights follow the documented scheme, reproducibly", {
  params <- model_params("lstm", TINY_LSTM)
  w <- initial_weights(params, 11L)
  expect_identical(initial_weights(params, 11L), w)
  expect_false(identical(initial_weights(params, 12L)$lstm.kernel, w$lstm.kernel))
  expect_identical(dim(w$lstm.kernel), c(5L, 16L))
  expect_lte(max(abs(w$lstm.kernel)), 1 / sqrt(4))
  expect_gt(max(abs(w$lstm.kernel)), 0.4)
  expect_lte(max(abs(w$embedding.embeddings)), 0.05)
  expect_lte(max(abs(w$head.dense.kernel)), sqrt(6 / (4 + 2)))
  expect_identical(w$lstm.bias, rep(c(0, 1, 0, 0), each = 4))
  expect_identical(w$head.dense.bias, c(0, 0))
  resnet <- initial_weights(model_params("resnet", configs[[1]][[2]]), 1L)
  expect_lte(max(abs(resnet$stem.conv.kernel)), sqrt(6 / 27))
  expect_identical(resnet$stem.bn.moving_variance, rep(1, 16))
})

test_that("a weights bundle that does not fit the model is rejected by tensor name", {
  params <- model_params("lstm", TINY_LSTM)
  w <- initial_weights(params, 1L)
  ok <- write_bundle_fixture(tempfile(), "weights", w)
  expect_identical(names(read_initial_weights(ok, params)), vapply(params, `[[`, "", "name"))
  bad <- w[-1]
  bad$lstm.bias <- numeric(3)
  bad$extra.kernel <- matrix(0, 2, 2)
  expect_error(read_initial_weights(write_bundle_fixture(tempfile(), "weights", bad), params),
               "missing \\[embedding.embeddings\\], unexpected \\[extra.kernel\\], wrong shape \\[lstm.bias\\]")
})

test_that("canonical weights load into the Keras model by name and read back", {
  skip_without_keras()
  params <- model_params("lstm", TINY_LSTM)
  w <- read_initial_weights(write_bundle_fixture(tempfile(), "weights", initial_weights(params, 5L)), params)
  model <- build_lstm(TINY_LSTM)
  load_keras_weights(model, w)
  back <- lapply(keras_variables(model), function(v) reticulate::py_to_r(v$numpy()))
  for (name in names(w)) expect_identical(as.vector(back[[keras_variable_key(name)]]), as.vector(w[[name]]), label = name)
  expect_identical(dim(back[["lstm/kernel"]]), dim(w$lstm.kernel))
  expect_error(load_keras_weights(model, w[-1]), "no tensor for variables \\[embedding/embeddings\\]")
  stray <- c(w, list(lstm.peephole = 1))
  expect_error(load_keras_weights(model, stray), "no Keras variable for tensors \\[lstm.peephole\\]")
})
