# The r-mxnet stack's run: read the spec, build and load the Gluon network, train epoch
# by epoch in the shared batch order, evaluate, keep the trained weights, and write the
# raw measurements (docs/stack-contract.md); the launcher derives the record from them.
# In inference mode: time the forward pass, evaluate other stacks' weights, export ONNX.
#
# The loop is R code on purpose: the R-vs-Python overhead is what this stack measures,
# so it makes exactly the MXNet calls of the Python MXNet stack's trainer. The data
# become NDArrays once (images NCHW); each step gathers its batch with nd.take, records
# the hybridised network's forward pass and the per-sample losses, runs backward and
# Trainer.step(batch_size) (the gradient of the mean loss, rescaled inside the update
# kernel). MXNet's engine runs all of it asynchronously: R queues a step's operators and
# goes on; the losses are read back once the epoch's work is done. Evaluation and
# inference mode call the hybridised network in autograd's predict mode, not recording,
# on inputs made once, the logits coming back as R matrices.
#
# Twins: python/dlrosetta/stacks/train.py, python/dlrosetta/stacks/mxnet/trainer.py, r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl

# Build the run spec's model as a Gluon network and load the canonical weights into it,
# on ctx; hybridised (static_alloc, static_shape) like the Python stack's.
build_model <- function(model, cfg, weights, ctx) {
  net <- switch(model, resnet = build_resnet(cfg), lstm = build_lstm(cfg),
                stop(sprintf("unknown model '%s'; expected resnet or lstm", model), call. = FALSE))
  load_gluon_parameters(net, model_parameters(net, model, weights), ctx)
  net$hybridize(static_alloc = TRUE, static_shape = TRUE)
  net
}

# The network's parameters with their values from canonical weights (see
# resnet_parameters, lstm_parameters).
model_parameters <- function(net, model, weights) {
  if (model == "resnet") resnet_parameters(net, weights) else lstm_parameters(net, weights)
}

# The model spec's tensors `names` as the network holds them now, canonical layout.
canonical_mxnet_weights <- function(net, model, names) {
  (if (model == "resnet") resnet_canonical(net, names) else lstm_canonical(net))[names]
}

# gluon.Trainer over the trainable parameters with the spec's optimiser: MXNet's SGD
# (state = m*state + lr*g; w -= state: the heavy ball at a constant rate) or Adam (bias
# correction folded into the rate, epsilon added to sqrt(v): the documented form), as
# the Python stack makes it.
make_trainer <- function(params, opt) {
  gluon <- reticulate::import("mxnet.gluon", convert = FALSE)
  params <- unname(params)
  switch(opt$name,
         sgd = gluon$Trainer(params, "sgd", list(learning_rate = as.numeric(opt$learning_rate),
                                                 momentum = as.numeric(opt$momentum))),
         adam = gluon$Trainer(params, "adam", list(learning_rate = as.numeric(opt$learning_rate),
                                                   beta1 = as.numeric(opt$beta_1), beta2 = as.numeric(opt$beta_2),
                                                   epsilon = as.numeric(opt$epsilon))),
         stop(sprintf("unknown optimizer '%s'; expected sgd or adam", opt$name), call. = FALSE))
}

# The training split as NDArrays on ctx, once: images NHWC -> NCHW, tokens int32 (as
# mxnet_input makes them), labels float32 (what the loss's pick takes).
training_data <- function(shards, ctx) {
  list(x_train = mxnet_input(shards$x_train, ctx), y_train = nd_array(shards$y_train, "float32", ctx))
}

# One optimiser step per row of batches (an R matrix of sample indices); returns each
# batch's loss from its forward pass, before its update. R queues every step, waits for
# MXNet's engine to finish them all (the updates too), then reads the losses.
train_batches <- function(learner, data, batches) {
  mx <- reticulate::import("mxnet", convert = FALSE)
  take <- mx$nd$take  # looked up once: each `$` on a Python object is a call into Python
  record <- mx$autograd$record
  update <- learner$trainer$step
  rows <- nd_array(batches, "int32", learner$ctx)
  batch_size <- ncol(batches)
  step <- function(k) {
    idx <- reticulate::py_get_item(rows, k)
    x <- take(data$x_train, idx)
    y <- take(data$y_train, idx)
    with(record(), loss <- reticulate::py_call(learner$loss, call_block(learner$net, x), y))
    loss$backward()
    update(batch_size)
    loss$mean()
  }
  losses <- lapply(seq_len(nrow(batches)) - 1L, step)
  mx$nd$waitall()
  vapply(losses, function(l) reticulate::py_to_r(l$asscalar()), 0)
}

# Run the stack on a run spec: train and write the measurements (and the trained
# weights, when the spec names a folder for them), or the check's step losses (check
# mode), or the profile (profile mode: MXNet's profiler, through the Python profiler
# module), or the inference timings, logits and ONNX export (inference mode), or
# `skipped` measurements when MXNet cannot be reached from R.
run_stack <- function(spec_path) {
  spec <- read_runspec(spec_path)
  reason <- mxnet_unavailable_reason(spec$threads, identical(spec$check, "profile"))
  if (!is.null(reason)) return(write_skipped(spec, reason))
  inputs <- read_inputs(spec)

  mx <- reticulate::import("mxnet", convert = FALSE)
  accelerator <- pick_accelerator(spec$device, visible_gpu())
  ctx <- mxnet_context(accelerator)
  mx$random$seed(as.integer(spec$seed))
  net <- build_model(spec$model, spec$model_config, inputs$weights, ctx)
  input <- function(x) mxnet_input(x, ctx)
  predict <- function(x) mxnet_predict(net, x)
  measured <- function() c(
    list(framework_version = reticulate::py_to_r(mx$`__version__`), device = accelerator %||% "cpu",
         parameter_count = gluon_parameter_count(net)),
    kernel_info(spec$model, accelerator))
  if (identical(spec$check, "inference")) {
    return(run_inference(
      spec, inputs$weights, inputs$shards,
      load_weights = function(w) set_gluon_parameters(net, model_parameters(net, spec$model, w), ctx),
      inference_input = input, predict = predict,
      export_onnx = function(path) export_mxnet_onnx(net, dim(inputs$shards$x_test)[-1], path), measured = measured))
  }

  learner <- list(net = net, ctx = ctx, trainer = make_trainer(trainable_parameters(net), spec$training$optimizer),
                  loss = mx$gluon$loss$SoftmaxCrossEntropyLoss())
  data <- training_data(inputs$shards, ctx)
  test <- test_inputs(input, inputs$shards$x_test)
  y_test <- inputs$shards$y_test
  order <- inputs$order
  tensor_names <- names(inputs$weights)  # the model spec's, in its order
  rm(inputs)  # the R copies of the data: MXNet holds them now

  run_training(spec, order,
               train_batches = function(batches) train_batches(learner, data, batches),
               evaluate = function() test_accuracy(predict, test, y_test),
               measured = measured,
               trace_block = function(out_dir) reticulate::import("dlrosetta.profiler")$trace_block("mxnet", out_dir),
               canonical_weights = function() canonical_mxnet_weights(net, spec$model, tensor_names))
}
