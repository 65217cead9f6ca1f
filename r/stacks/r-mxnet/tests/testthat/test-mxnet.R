# Twins: tests/test_stacks_python.py, r/stacks/r-keras/tests/testthat/test-keras.R

test_that("the device follows the spec and what MXNet sees", {
  expect_null(pick_accelerator("cpu", "gpu:0"))
  expect_null(pick_accelerator("auto", NULL))
  expect_identical(pick_accelerator("auto", "gpu:0"), "gpu:0")
  expect_identical(pick_accelerator("gpu", "gpu:0"), "gpu:0")
  expect_error(pick_accelerator("gpu", NULL), "asks for a GPU, but mxnet sees none")
})

test_that("MXNet got its threads from the environment before it loaded", {
  skip_without_mxnet()
  expect_identical(Sys.getenv("OMP_NUM_THREADS"), "1")
  expect_identical(Sys.getenv("MXNET_CPU_WORKER_NTHREADS"), "1")
  configure <- reticulate::import("dlrosetta.stacks.mxnet")$configure
  expect_error(configure(3L), "mxnet was imported with")  # too late to change them
})

test_that("R arrays become C-ordered NumPy arrays and NDArrays with the same indexing", {
  skip_without_mxnet()
  x <- array(seq_len(24) - 1L, dim = c(2, 3, 4))
  a <- as_numpy(x, "float32")
  expect_true(reticulate::py_to_r(a$flags$c_contiguous))
  expect_identical(as.vector(reticulate::py_to_r(a$ravel())), as.numeric(aperm(x)))  # row-major order
  nd <- nd_array(x, "int32", mxnet_context(NULL))
  expect_identical(reticulate::py_to_r(nd$dtype$`__name__`), "int32")
  expect_identical(reticulate::py_to_r(nd$asnumpy()), x)
})

test_that("named containers give children, and so parameters, the canonical names", {
  skip_without_mxnet()
  nn <- reticulate::import("mxnet.gluon.nn", convert = FALSE)
  net <- named(nn$HybridSequential(), list(stem = named(nn$HybridSequential(), list(bn = gluon_bn(4L)))))
  expect_setequal(names(structural_parameters(net)),
                  c("stem.bn.gamma", "stem.bn.beta", "stem.bn.running_mean", "stem.bn.running_var"))
  expect_identical(gluon_parameter_count(net), 8)  # the moving statistics are not trained
})

test_that("every parameter must get a value", {
  skip_without_mxnet()
  net <- build_lstm(TINY_LSTM)
  values <- lstm_parameters(net, initial_weights(model_spec("lstm", TINY_LSTM), 5L))
  expect_error(load_gluon_parameters(net, values[-1], mxnet_context(NULL)), "embedding[0-9]+_weight\\] have no canonical tensor")
})

test_that("kernel notes come from the Python MXNet stack for the model and device", {
  skip_without_mxnet()
  lstm <- kernel_info("lstm", NULL)
  expect_true(lstm$fused_kernel)
  expect_match(lstm$kernel_notes, "oneDNN LSTM", fixed = TRUE)
  expect_match(kernel_info("resnet", NULL)$kernel_notes, "oneDNN convolutions", fixed = TRUE)
  expect_match(kernel_info("resnet", "gpu:0")$kernel_notes, "cuDNN", fixed = TRUE)
})

test_that("canonical weights loaded into the Gluon network come back out as the same arrays", {
  skip_without_mxnet()
  ctx <- mxnet_context(NULL)
  for (model in c("lstm", "resnet")) {
    cfg <- if (model == "lstm") TINY_LSTM else list(depth = 8L, width = 4L, shortcut = "B", num_classes = 3L,
                                                    image_size = 8L)
    spec <- model_spec(model, cfg)
    w <- read_initial_weights(write_bundle_fixture(tempfile(), "weights", initial_weights(spec, 5L)), spec)
    net <- build_model(model, cfg, w, ctx)
    back <- canonical_mxnet_weights(net, model, param_names(spec))
    expect_identical(names(back), param_names(spec))
    for (name in names(w)) {
      expect_identical(as.numeric(npy_shape(back[[name]])), as.numeric(npy_shape(w[[name]])), label = name)
      expect_identical(as.vector(back[[name]]), as.vector(w[[name]]), label = name)
    }
    other <- initial_weights(spec, 6L)  # loaded again into the built network: what inference mode does
    set_gluon_parameters(net, model_parameters(net, model, other), ctx)
    expect_equal(lapply(canonical_mxnet_weights(net, model, param_names(spec)), as.vector), lapply(other, as.vector),
                 tolerance = 1e-7)
  }
})

test_that("the forward pass takes rows of the shards' arrays (NHWC images) and gives logits as an R matrix", {
  skip_without_mxnet()
  ctx <- mxnet_context(NULL)
  w <- initial_weights(model_spec("lstm", TINY_LSTM), 9L)
  net <- build_model("lstm", TINY_LSTM, w, ctx)
  set.seed(3)
  tokens <- matrix(sample.int(20L, 4 * 6, replace = TRUE) - 1L, 4)
  logits <- mxnet_predict(net, mxnet_input(tokens, ctx))
  expect_true(is.matrix(logits) && is.double(logits))
  expect_equal(logits, lstm_reference_logits(w, tokens), tolerance = 1e-5)
  images <- array(runif(2 * 4 * 4 * 3), dim = c(2, 4, 4, 3))
  nchw <- mxnet_input(images, ctx)
  expect_identical(unlist(r_value(nchw$shape)), c(2L, 3L, 4L, 4L))
  expect_equal(r_value(nchw$asnumpy()), aperm(images, c(1, 4, 2, 3)), tolerance = 1e-7)
})

test_that("the ONNX export is the Python MXNet stack's: input `input` in the shards' layout, output `logits`", {
  skip_without_mxnet()
  cfg <- list(depth = 8L, width = 2L, shortcut = "A", num_classes = 3L, image_size = 4L)
  net <- build_model("resnet", cfg, initial_weights(model_spec("resnet", cfg), 1L), mxnet_context(NULL))
  path <- tempfile(fileext = ".onnx")
  export <- export_mxnet_onnx(net, c(4L, 4L, 3L), path)
  expect_match(export$exporter, "^mx2onnx \\(mxnet 1.9.1, onnx ")
  expect_identical(export$opset, 13L)
  dims <- expect_onnx_contract(path)
  expect_identical(reticulate::py_get_item(dims, 3L)$dim_value, 3L)
})
