# Twins: tests/test_r_stack.py

test_that("the Keras LSTM counts the canonical parameters", {
  skip_without_keras()
  model <- build_lstm(TINY_LSTM)
  expect_identical(keras_parameter_count(model), parameter_count(model_spec("lstm", TINY_LSTM)))
  expect_setequal(names(keras_variables(model)), keras_variable_key(param_names(model_spec("lstm", TINY_LSTM))))
})

test_that("its forward pass is the documented LSTM (gate order i, f, g, o)", {
  skip_without_keras()
  w <- initial_weights(model_spec("lstm", TINY_LSTM), 9L)
  w$lstm.bias <- seq(-0.8, 0.7, length.out = 16)  # distinct per gate, so an order mix-up shows
  model <- load_keras_weights(build_lstm(TINY_LSTM), w)
  set.seed(2)
  tokens <- matrix(sample.int(20L, 3 * 6, replace = TRUE) - 1L, 3)
  logits <- reticulate::py_to_r(model$predict_on_batch(as_numpy(tokens, "int32")))
  expect_equal(logits, lstm_reference_logits(w, tokens), tolerance = 1e-5)
})
