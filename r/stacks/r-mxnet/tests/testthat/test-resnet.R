# Twins: tests/test_r_stack.py, r/stacks/r-keras/tests/testthat/test-resnet.R

test_that("the Gluon ResNet counts and names the canonical parameters (shortcuts A and B)", {
  skip_without_mxnet()
  for (shortcut in c("A", "B")) {
    cfg <- list(depth = 14L, width = 4L, shortcut = shortcut, num_classes = 3L, image_size = 8L)
    net <- build_resnet(cfg)
    spec <- model_spec("resnet", cfg)
    expect_identical(gluon_parameter_count(net), parameter_count(spec))
    values <- resnet_parameters(net, initial_weights(spec, 2L))
    expect_length(values, length(param_names(spec)))
    expect_length(structural_parameters(net), length(param_names(spec)))  # one Gluon parameter per tensor
  }
})

test_that("canonical weights load in MXNet's layouts and read back", {
  skip_without_mxnet()
  cfg <- list(depth = 8L, width = 4L, shortcut = "B", num_classes = 3L)
  spec <- model_spec("resnet", cfg)
  w <- initial_weights(spec, 4L)
  net <- build_resnet(cfg)
  load_gluon_parameters(net, resnet_parameters(net, w), mxnet_context(NULL))
  params <- structural_parameters(net)
  back <- function(key) r_value(params[[key]]$data()$asnumpy())
  expect_equal(back("stage2.block1.conv1.weight"), aperm(w$stage2.block1.conv1.kernel, c(4, 3, 1, 2)), tolerance = 1e-7)
  expect_equal(back("head.dense.weight"), t(w$head.dense.kernel), tolerance = 1e-7)
  expect_equal(as.vector(back("stage3.block1.shortcut.bn.running_var")), as.vector(w$stage3.block1.shortcut.bn.moving_variance))
  expect_error(resnet_parameters(net, c(w, list(stem.conv.bias = 0))), "'stem.conv.bias' has no Gluon parameter")
})

test_that("stages halve the resolution; the head sees the last stage's channels", {
  skip_without_mxnet()
  cfg <- list(depth = 8L, width = 4L, shortcut = "A", num_classes = 3L)
  net <- build_resnet(cfg)
  net$initialize()
  x <- array(runif(2 * 3 * 32 * 32), dim = c(2, 3, 32, 32))
  stage <- function(k) reticulate::py_get_item(net, k)  # stem, stage1..3, head
  y <- call_block(stage(0L), nd_array(x, "float32", mxnet_context(NULL)))
  shapes <- list()
  for (k in 1:3) {
    y <- call_block(stage(k), y)
    shapes[[k]] <- unlist(reticulate::py_to_r(y$shape))
  }
  expect_identical(shapes, list(c(2L, 4L, 32L, 32L), c(2L, 8L, 16L, 16L), c(2L, 16L, 8L, 8L)))
  expect_identical(dim(reticulate::py_to_r(call_block(stage(4L), y)$asnumpy())), c(2L, 3L))
})

test_that("shortcut A subsamples x[:, :, ::2, ::2] and zero-pads channels on both sides", {
  skip_without_mxnet()
  set.seed(4)
  x <- array(runif(2 * 2 * 4 * 4), dim = c(2, 2, 4, 4))
  out <- forward(shortcut_a(2L, 6L), x, "float32")
  expect_identical(dim(out), c(2L, 6L, 2L, 2L))
  expect_equal(out[, 3:4, , ], x[, , c(1, 3), c(1, 3)], tolerance = 1e-7)
  expect_true(all(out[, c(1, 2, 5, 6), , ] == 0))
})

test_that("the head's mean pooling averages over H and W", {
  skip_without_mxnet()
  x <- array(runif(2 * 3 * 4 * 4), dim = c(2, 3, 4, 4))
  expect_equal(forward(global_mean(), x, "float32"), apply(x, c(1, 2), mean), tolerance = 1e-6)
})
