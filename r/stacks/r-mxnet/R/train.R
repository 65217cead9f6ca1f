# The r-mxnet stack's run: read the spec, build and load the Gluon network, train epoch
# by epoch in the shared batch order, evaluate, and write the raw measurements
# (docs/stack-contract.md); the launcher derives the record from them.
#
# The loop is R code on purpose: the R-vs-Python overhead is what this stack measures,
# so it makes exactly the MXNet calls of the Python MXNet stack's trainer. The data
# become NDArrays once (images NCHW); each step gathers its batch with nd.take, records
# the hybridised network's forward pass and the per-sample losses, runs backward and
# Trainer.step(batch_size) (the gradient of the mean loss, rescaled inside the update
# kernel). MXNet's engine runs all of it asynchronously: R queues a step's operators and
# goes on; the losses are read back once the epoch's work is done.
#
# Twins: python/dlrosetta/stacks/train.py, python/dlrosetta/stacks/mxnet/trainer.py, r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl

EVAL_BATCH <- 1000L

# Build the run spec's model as a Gluon network and load the canonical weights into it,
# on ctx; hybridised (static_alloc, static_shape) like the Python stack's.
build_model <- function(model, cfg, weights, ctx) {
  net <- switch(model, resnet = build_resnet(cfg), lstm = build_lstm(cfg),
                stop(sprintf("unknown model '%s'; expected resnet or lstm", model), call. = FALSE))
  values <- if (model == "resnet") resnet_parameters(net, weights) else lstm_parameters(net, weights)
  load_gluon_parameters(net, values, ctx)
  net$hybridize(static_alloc = TRUE, static_shape = TRUE)
  net
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

# The shards (see read_shards) as NDArrays on ctx, once: images NHWC -> NCHW (aperm in
# R), tokens int32, labels float32 (what the loss's pick and the accuracy compare take).
shards_to_mxnet <- function(shards, ctx) {
  images <- length(dim(shards$x_train)) == 4L
  x <- function(a) if (images) nd_array(aperm(a, c(1L, 4L, 2L, 3L)), "float32", ctx) else nd_array(a, "int32", ctx)
  list(x_train = x(shards$x_train), y_train = nd_array(shards$y_train, "float32", ctx),
       x_test = x(shards$x_test), y_test = nd_array(shards$y_test, "float32", ctx),
       n_test = length(shards$y_test))
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

# Accuracy on the whole test split, inference mode (not recording: BN moving statistics).
evaluate_accuracy <- function(learner, data) {
  nd <- reticulate::import("mxnet", convert = FALSE)$nd
  correct <- 0
  for (start in seq(0L, data$n_test - 1L, by = EVAL_BATCH)) {
    end <- min(start + EVAL_BATCH, data$n_test)
    logits <- call_block(learner$net, nd$slice_axis(data$x_test, axis = 0L, begin = start, end = end))
    hits <- nd$equal(logits$argmax(axis = 1L), nd$slice_axis(data$y_test, axis = 0L, begin = start, end = end))
    correct <- correct + reticulate::py_to_r(hits$sum()$asscalar())
  }
  correct / data$n_test
}

# Run the stack on a run spec: train and write the measurements, or the check's step
# losses (check mode), or the profile (profile mode: MXNet's profiler, through the Python
# profiler module), or `skipped` measurements when MXNet cannot be reached from R.
run_stack <- function(spec_path) {
  spec <- read_runspec(spec_path)
  reason <- mxnet_unavailable_reason(spec$threads, identical(spec$check, "profile"))
  if (!is.null(reason)) return(write_skipped(spec, reason))
  inputs <- read_inputs(spec)
  weights <- inputs$weights
  shards <- inputs$shards
  order <- inputs$order

  mx <- reticulate::import("mxnet", convert = FALSE)
  accelerator <- pick_accelerator(spec$device, visible_gpu())
  ctx <- mxnet_context(accelerator)
  mx$random$seed(as.integer(spec$seed))
  net <- build_model(spec$model, spec$model_config, weights, ctx)
  learner <- list(net = net, ctx = ctx, trainer = make_trainer(trainable_parameters(net), spec$training$optimizer),
                  loss = mx$gluon$loss$SoftmaxCrossEntropyLoss())
  data <- shards_to_mxnet(shards, ctx)
  rm(shards)  # the R copies: MXNet holds the data now

  run_training(spec, order,
               train_batches = function(batches) train_batches(learner, data, batches),
               evaluate = function() evaluate_accuracy(learner, data),
               measured = function() c(
                 list(framework_version = reticulate::py_to_r(mx$`__version__`), device = accelerator %||% "cpu",
                      parameter_count = gluon_parameter_count(net)),
                 kernel_info(spec$model, accelerator)),
               trace_block = function(out_dir) reticulate::import("dlrosetta.profiler")$trace_block("mxnet", out_dir))
}
