# Twins: tests/test_r_stack.py, r/stacks/r-keras/tests/testthat/test-train.R

test_that("optimisers are the spec's, by name, in MXNet's documented forms", {
  skip_without_mxnet()
  net <- build_lstm(TINY_LSTM)
  net$initialize()
  params <- trainable_parameters(net)
  sgd <- make_trainer(params, list(name = "sgd", learning_rate = 0.1, momentum = 0.9))$optimizer
  expect_identical(class(sgd)[[1]], "mxnet.optimizer.optimizer.SGD")
  expect_equal(r_value(sgd$momentum), 0.9)
  expect_equal(r_value(sgd$lr), 0.1)
  adam <- make_trainer(params, list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999,
                                    epsilon = 1e-8))$optimizer
  expect_identical(class(adam)[[1]], "mxnet.optimizer.optimizer.Adam")
  expect_equal(c(r_value(adam$beta1), r_value(adam$beta2), r_value(adam$epsilon)), c(0.9, 0.999, 1e-8))
  expect_error(make_trainer(params, list(name = "lamb")), "unknown optimizer 'lamb'")
})

test_entry_point_contract(skip_without_mxnet, framework_version = function() reticulate::import("mxnet")$`__version__`,
                          fused_kernel = TRUE, kernel_notes = "oneDNN LSTM",
                          onnx_exporter = "^mx2onnx \\(mxnet ")
