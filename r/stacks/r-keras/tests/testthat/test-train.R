# Twins: tests/test_r_stack.py

test_that("optimisers are the spec's, by name", {
  skip_without_keras()
  sgd <- make_optimizer(list(name = "sgd", learning_rate = 0.1, momentum = 0.9))
  expect_equal(reticulate::py_to_r(sgd$momentum), 0.9)
  expect_false(reticulate::py_to_r(sgd$nesterov))
  adam <- make_optimizer(list(name = "adam", learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8))
  expect_equal(reticulate::py_to_r(adam$epsilon), 1e-8)
  expect_identical(class(adam)[[1]], "dlrosetta.stacks.keras.trainer.Adam")  # densifies sparse gradients
  expect_error(make_optimizer(list(name = "lamb")), "unknown optimizer 'lamb'")
})

test_entry_point_contract(skip_without_keras, framework_version = function() reticulate::import("keras")$`__version__`,
                          fused_kernel = FALSE, kernel_notes = "Keras LSTM on CPU",
                          onnx_exporter = "^keras .* model.export \\(tf2onnx ")
