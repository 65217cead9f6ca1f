# Twins: tests/test_r_stack.py

test_that("the Keras ResNet counts and names the canonical parameters (shortcuts A and B)", {
  skip_without_keras()
  for (shortcut in c("A", "B")) {
    cfg <- list(depth = 14L, width = 4L, shortcut = shortcut, num_classes = 3L, image_size = 8L)
    model <- build_resnet(cfg)
    spec <- model_spec("resnet", cfg)
    expect_identical(keras_parameter_count(model), parameter_count(spec))
    expect_setequal(names(keras_variables(model)), keras_variable_key(param_names(spec)))
  }
})

test_that("stages halve the resolution with explicit one-pixel padding", {
  skip_without_keras()
  model <- build_resnet(list(depth = 8L, width = 4L, shortcut = "A", num_classes = 3L))
  shape_of <- function(name) unlist(reticulate::py_to_r(model$get_layer(name)$output$shape))
  expect_identical(shape_of("stage2_block1_conv1"), c(16L, 16L, 8L))
  expect_identical(shape_of("stage3_block1_add"), c(8L, 8L, 16L))
  expect_identical(shape_of("head_dense"), 3L)
})

test_that("shortcut A subsamples x[:, ::2, ::2, :] and zero-pads channels on both sides", {
  skip_without_keras()
  keras <- reticulate::import("keras", convert = FALSE)
  cfg <- list(depth = 8L, width = 2L, shortcut = "A", num_classes = 2L, image_size = 4L)
  model <- build_resnet(cfg)
  add <- model$get_layer("stage2_block1_add")
  probe <- keras$Model(model$input, list(model$get_layer("stage1_block1_relu2")$output,
                                         reticulate::py_get_item(add$input, 1L)))
  set.seed(4)
  out <- probe$predict_on_batch(as_numpy(array(runif(2 * 4 * 4 * 3), dim = c(2, 4, 4, 3)), "float32"))
  x <- reticulate::py_to_r(reticulate::py_get_item(out, 0L))
  shortcut <- reticulate::py_to_r(reticulate::py_get_item(out, 1L))
  expect_identical(dim(shortcut), c(2L, 2L, 2L, 4L))
  expect_identical(shortcut[, , , 2:3], x[, c(1, 3), c(1, 3), ])
  expect_true(all(shortcut[, , , c(1, 4)] == 0))
})
