# Twins: tests/test_model_spec.py

configs <- list(
  list("resnet", list(depth = 8L, width = 16L, shortcut = "A", num_classes = 10L), 75290),
  list("resnet", list(depth = 20L, width = 16L, shortcut = "A", num_classes = 10L), 269722),
  list("resnet", list(depth = 20L, width = 16L, shortcut = "B", num_classes = 10L), 272474),
  list("lstm", list(vocab_size = 30000L, embedding_dim = 125L, units = 100L, maxlen = 150L, num_classes = 2L), 3840602))

test_that("parameter counts are those of docs/models.md", {
  for (c in configs) expect_identical(parameter_count(model_spec(c[[1]], c[[2]])), c[[3]])
  expect_identical(model_spec("lstm", TINY_LSTM)$model, "lstm")
  expect_identical(resnet_blocks_per_stage(20L), 3L)
  expect_error(model_spec("resnet", list(depth = 10L, width = 16L, shortcut = "A", num_classes = 10L)), "6n\\+2")
  expect_error(model_spec("resnet", list(depth = 8L, width = 16L, shortcut = "C", num_classes = 10L)), "'A' or 'B'")
  expect_error(model_spec("vit", list()), "unknown model 'vit'")
})

test_that("tensor names, shapes, inits and trainability are python/dlrosetta/model_spec.py's", {
  skip_without_python()
  path <- tempfile(fileext = ".json")
  write_json_atomic(path, lapply(configs, function(c) list(model = c[[1]], config = c[[2]])))
  py <- jsonlite::fromJSON(run_python(c(
    "import json, sys",
    "from dlrosetta.model_spec import model_spec",
    "cases = json.load(open(sys.argv[1]))",
    "print(json.dumps([[[p.name, list(p.shape), p.init, p.trainable] for p in model_spec(c['model'], c['config']).params]",
    "                  for c in cases]))"), path), simplifyVector = FALSE)
  for (k in seq_along(configs)) {
    spec <- model_spec(configs[[k]][[1]], configs[[k]][[2]])
    expect_identical(param_names(spec), vapply(py[[k]], `[[`, "", 1))
    for (i in seq_along(spec$params)) {
      p <- spec$params[[i]]
      expected <- py[[k]][[i]]
      expect_identical(p$shape, as.integer(unlist(expected[[2]])), label = p$name)
      expect_identical(p$trainable, expected[[4]], label = p$name)
      # Python spells a uniform init "uniform:<limit>" with repr's shortest digits.
      init <- if (is.null(p$limit)) p$init else sprintf("uniform:%.17g", p$limit)
      py_init <- expected[[3]]
      if (startsWith(py_init, "uniform:")) py_init <- sprintf("uniform:%.17g", as.numeric(sub("uniform:", "", py_init)))
      expect_identical(init, py_init, label = p$name)
    }
  }
})

test_that("drawn weights follow the documented scheme, reproducibly", {
  spec <- model_spec("lstm", TINY_LSTM)
  w <- initial_weights(spec, 11L)
  expect_identical(names(w), param_names(spec))
  expect_identical(initial_weights(spec, 11L), w)
  expect_false(identical(initial_weights(spec, 12L)$lstm.kernel, w$lstm.kernel))
  expect_identical(dim(w$lstm.kernel), c(5L, 16L))
  expect_lte(max(abs(w$lstm.kernel)), 1 / sqrt(4))
  expect_gt(max(abs(w$lstm.kernel)), 0.4)
  expect_lte(max(abs(w$embedding.embeddings)), 0.05)
  expect_lte(max(abs(w$head.dense.kernel)), sqrt(6 / (4 + 2)))
  expect_identical(w$lstm.bias, rep(c(0, 1, 0, 0), each = 4))
  expect_identical(w$head.dense.bias, c(0, 0))
  resnet <- initial_weights(model_spec("resnet", configs[[1]][[2]]), 1L)
  expect_lte(max(abs(resnet$stem.conv.kernel)), sqrt(6 / 27))  # he_uniform: fan_in 3*3*3
  expect_gt(max(abs(resnet$stem.conv.kernel)), 0.4)
  expect_identical(resnet$stem.bn.moving_variance, rep(1, 16))
  expect_identical(resnet$stem.bn.beta, rep(0, 16))
})
