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
