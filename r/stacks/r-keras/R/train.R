# The r-keras stack's run: read the spec, build and load the model, train epoch by
# epoch in the shared batch order, evaluate, keep the trained weights, and write the raw
# measurements (docs/stack-contract.md); the launcher derives the record from them. In
# inference mode: time the forward pass, evaluate other stacks' weights, export ONNX.
#
# The loop is R code on purpose: the R-vs-Python overhead is what this stack measures,
# so it makes exactly the Keras calls of the Python Keras stack. The training data
# become backend tensors once; each step passes the batch's index row, gathers the
# batch with keras.ops.take on the device, runs Keras's compiled train step
# (train_on_batch: a tf.function, or jax.jit) and brings back one number, the loss.
# Evaluation and inference mode run Keras's compiled predict step (predict_on_batch) on
# inputs made once, the logits coming back as R matrices.
#
# Twins: python/dlrosetta/stacks/train.py, python/dlrosetta/stacks/keras/trainer.py, julia/stacks/julia-native/src/train.jl

# Build the run spec's model as a Keras model.
build_model <- function(model, cfg) {
  switch(model, resnet = build_resnet(cfg), lstm = build_lstm(cfg),
         stop(sprintf("unknown model '%s'; expected resnet or lstm", model), call. = FALSE))
}

# The spec's optimiser as a Keras optimiser: SGD with heavy-ball momentum (Keras's
# v = m*v - lr*g, w += v equals v = m*v + g, w -= lr*v at a constant rate) or Adam.
# Adam is the Python Keras stack's own subclass, which densifies TensorFlow's sparse
# embedding gradient first: Keras's Adam on those rows computes a second moment of
# sum(g_i^2) over token occurrences instead of (sum g_i)^2, unlike every other stack.
make_optimizer <- function(opt) {
  switch(opt$name,
         sgd = reticulate::import("keras", convert = FALSE)$optimizers$SGD(
           learning_rate = as.numeric(opt$learning_rate), momentum = as.numeric(opt$momentum), nesterov = FALSE),
         adam = reticulate::import("dlrosetta.stacks.keras.trainer", convert = FALSE)$Adam(
           learning_rate = as.numeric(opt$learning_rate), beta_1 = as.numeric(opt$beta_1),
           beta_2 = as.numeric(opt$beta_2), epsilon = as.numeric(opt$epsilon)),
         stop(sprintf("unknown optimizer '%s'; expected sgd or adam", opt$name), call. = FALSE))
}

# Trainable parameters as Keras counts them.
keras_parameter_count <- function(model) {
  prod <- reticulate::import_builtins(convert = FALSE)$`__import__`("math")$prod
  sum(vapply(reticulate::iterate(model$trainable_weights, simplify = FALSE),
             function(v) as.numeric(reticulate::py_to_r(prod(v$shape))), 0))
}

# The training split converted once for Keras: backend tensors on the model's device.
training_data <- function(shards) {
  to_tensor <- reticulate::import("keras", convert = FALSE)$ops$convert_to_tensor
  list(x_train = to_tensor(as_numpy(shards$x_train, npy_dtype(shards$x_train))),
       y_train = to_tensor(as_numpy(shards$y_train, "int32")))
}

# One optimiser step per row of batches (an R matrix of sample indices); returns each
# batch's loss from its forward pass, before its update. Per step, R makes six calls
# into Python: take the index row (a NumPy view) and make it a tensor, gather x and y
# (keras.ops.take), run the compiled step, and read back the loss.
train_batches <- function(model, data, batches) {
  ops <- reticulate::import("keras", convert = FALSE)$ops
  take <- ops$take
  to_tensor <- ops$convert_to_tensor
  train_on_batch <- model$train_on_batch
  rows <- as_numpy(batches, "int32")
  step <- function(k) {
    idx <- to_tensor(reticulate::py_get_item(rows, k))
    reticulate::py_to_r(train_on_batch(take(data$x_train, idx, axis = 0L), take(data$y_train, idx, axis = 0L)))
  }
  vapply(seq_len(nrow(batches)) - 1L, step, 0)
}

# Run the stack on a run spec: train and write the measurements (and the trained
# weights, when the spec names a folder for them), or the check's step losses (check
# mode), or the profile (profile mode: the backend's profiler, through the Python
# profiler module), or the inference timings, logits and ONNX export (inference mode),
# or `skipped` measurements when Keras cannot be reached from R.
run_stack <- function(spec_path) {
  spec <- read_runspec(spec_path)
  reason <- keras_unavailable_reason()
  if (!is.null(reason)) return(write_skipped(spec, reason))
  inputs <- read_inputs(spec)

  accelerator <- pick_accelerator(spec$device, configure_backend(spec$threads))
  keras <- reticulate::import("keras", convert = FALSE)
  # Held for the process's life: every variable, tensor and step goes to this device.
  keras$device(if (is.null(accelerator)) "cpu:0" else "gpu:0")$`__enter__`()
  keras$utils$set_random_seed(as.integer(spec$seed))
  model <- build_model(spec$model, spec$model_config)
  load_keras_weights(model, inputs$weights)
  model$compile(optimizer = make_optimizer(spec$training$optimizer),
                loss = keras$losses$SparseCategoricalCrossentropy(from_logits = TRUE))
  predict <- function(input) keras_predict(model, input)
  measured <- function() c(
    list(framework_version = reticulate::py_to_r(keras$`__version__`),
         device = if (is.null(accelerator)) "cpu" else sprintf("gpu:0 (%s)", accelerator),
         parameter_count = keras_parameter_count(model)),
    kernel_info(spec$model, accelerator))
  if (identical(spec$check, "inference")) {
    return(run_inference(spec, inputs$weights, inputs$shards, load_weights = function(w) load_keras_weights(model, w),
                         inference_input = keras_input, predict = predict,
                         export_onnx = function(path) export_keras_onnx(model, path), measured = measured))
  }

  data <- training_data(inputs$shards)
  test <- test_inputs(keras_input, inputs$shards$x_test)
  y_test <- inputs$shards$y_test
  order <- inputs$order
  tensor_names <- names(inputs$weights)  # the model spec's, in its order
  rm(inputs)  # the R copies of the data: NumPy and the backend hold them now

  run_training(spec, order,
               train_batches = function(batches) train_batches(model, data, batches),
               evaluate = function() test_accuracy(predict, test, y_test),
               measured = measured,
               trace_block = function(out_dir) {
                 reticulate::import("dlrosetta.profiler")$trace_block(keras_backend(), out_dir)
               },
               canonical_weights = function() canonical_keras_weights(model, tensor_names))
}
