# Twins: tests/test_r_stack.py, r/stacks/r-keras/tests/testthat/test-lstm.R

test_that("the Gluon LSTM counts the canonical parameters; its second bias is a constant", {
  skip_without_mxnet()
  net <- build_lstm(TINY_LSTM)
  expect_identical(gluon_parameter_count(net), parameter_count(model_spec("lstm", TINY_LSTM)))
  expect_identical(r_value(net$lstm$l0_h2h_bias$grad_req), "null")
  expect_length(trainable_parameters(net), length(param_names(model_spec("lstm", TINY_LSTM))))
})

test_that("its forward pass is the documented LSTM (gate order i, f, g, o)", {
  skip_without_mxnet()
  w <- initial_weights(model_spec("lstm", TINY_LSTM), 9L)
  w$lstm.bias <- seq(-0.8, 0.7, length.out = 16)  # distinct per gate, so an order mix-up shows
  net <- build_lstm(TINY_LSTM)
  load_gluon_parameters(net, lstm_parameters(net, w), mxnet_context(NULL))
  net$hybridize(static_alloc = TRUE, static_shape = TRUE)
  set.seed(2)
  tokens <- matrix(sample.int(20L, 3 * 6, replace = TRUE) - 1L, 3)
  expect_equal(forward(net, tokens, "int32"), lstm_reference_logits(w, tokens), tolerance = 1e-5)
})
