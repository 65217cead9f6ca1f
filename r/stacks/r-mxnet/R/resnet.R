# ResNet v1 for CIFAR (He et al. 2016, section 4.2), docs/models.md, built from R with
# MXNet Gluon: the blocks of the Python MXNet stack (HybridBlocks, NCHW, oneDNN's
# convolutions, batch norm and ReLU), their hybrid_forward written in R. Blocks carry the
# canonical names of the model spec (r/R/model_spec.R) as structural names (stem.conv,
# stage2.block1.bn1, head.dense, ...), which is how the weights load.
#
# Twins: python/dlrosetta/stacks/mxnet/resnet.py, r/stacks/r-keras/R/resnet.R, julia/stacks/julia-native/src/resnet.jl

# 3x3 convolutions pad one pixel on every side, 1x1 none; no bias (batch norm follows).
gluon_conv <- function(cin, cout, kernel, stride) {
  reticulate::import("mxnet.gluon.nn", convert = FALSE)$Conv2D(
    as.integer(cout), as.integer(kernel), as.integer(stride), padding = as.integer(kernel %/% 2L),
    use_bias = FALSE, in_channels = as.integer(cin))
}

# moving = 0.9 * moving + 0.1 * batch: MXNet's momentum weighs the old value.
gluon_bn <- function(channels) {
  reticulate::import("mxnet.gluon.nn", convert = FALSE)$BatchNorm(momentum = 0.9, epsilon = 1e-5,
                                                                   in_channels = as.integer(channels))
}

# Shortcut A where the shape changes: x[:, :, ::2, ::2], the new channels zero-padded
# equally on both sides. MXNet's pad pads only axes after the first two, so the
# channels become axis 2 of a 5-D view [N, 1, C, H, W] (concatenating zeros instead
# crashes MXNet 1.9's oneDNN concat backward at small widths), squeezed back after: a
# view, as a reshape would be, but one MXNet's ONNX exporter converts (reshape's -3
# code it refuses).
shortcut_a <- function(cin, cout) {
  cls <- hybrid_block_class("ShortcutA", init = function(self, side) self$side <- side, forward = function(self, F, x) {
    every <- reticulate::tuple(NULL, NULL, NULL, NULL)
    x <- F$slice(x, begin = every, end = every, step = reticulate::tuple(1L, 1L, 2L, 2L))
    side <- self$side
    x <- F$pad(F$expand_dims(x, axis = 1L), mode = "constant", constant_value = 0L,
               pad_width = reticulate::tuple(0L, 0L, 0L, 0L, side, side, 0L, 0L, 0L, 0L))
    F$squeeze(x, axis = 1L)  # [N, 1, C, H, W] -> [N, C, H, W]
  })
  cls(as.integer((cout - cin) %/% 2L))
}

# Global average pooling as a mean over H and W, [N, C, H, W] -> [N, C]: Gluon's
# GlobalAvgPool2D sends its gradient back through oneDNN's reference kernels (see the
# Python stack's resnet.py).
global_mean <- function() {
  hybrid_block_class("GlobalMean", forward = function(self, F, x) F$mean(x, axis = reticulate::tuple(2L, 3L)))()
}

# One basic block: conv-BN-ReLU, conv-BN, plus the shortcut (identity, A or B), ReLU.
basic_block <- function(cin, cout, stride, shortcut) {
  cls <- hybrid_block_class("BasicBlock", init = function(self, cin, cout, stride, shortcut) {
    self$conv1 <- gluon_conv(cin, cout, 3L, stride)
    self$bn1 <- gluon_bn(cout)
    self$conv2 <- gluon_conv(cout, cout, 3L, 1L)
    self$bn2 <- gluon_bn(cout)
    self$shortcut <- if (stride == 1L && cin == cout) NULL else if (shortcut == "A") shortcut_a(cin, cout) else
      named(reticulate::import("mxnet.gluon.nn", convert = FALSE)$HybridSequential(),
            list(conv = gluon_conv(cin, cout, 1L, stride), bn = gluon_bn(cout)))
  }, forward = function(self, F, x) {
    y <- F$Activation(call_block(self$bn1, call_block(self$conv1, x)), act_type = "relu")
    y <- call_block(self$bn2, call_block(self$conv2, y))
    shortcut <- if (is.null(self$shortcut)) x else call_block(self$shortcut, x)
    F$Activation(F$elemwise_add(y, shortcut), act_type = "relu")
  })
  cls(as.integer(cin), as.integer(cout), as.integer(stride), shortcut)
}

# Build the ResNet of a run spec's model_config as a Gluon network (NCHW images in,
# logits out). Every shape is given, so the parameters exist before the first batch.
build_resnet <- function(cfg) {
  nn <- reticulate::import("mxnet.gluon.nn", convert = FALSE)
  if (!cfg$shortcut %in% c("A", "B")) stop(sprintf("resnet shortcut must be 'A' or 'B', got '%s'", cfg$shortcut))
  n <- resnet_blocks_per_stage(cfg$depth)
  width <- as.integer(cfg$width)
  net <- named(nn$HybridSequential(), list(stem = named(nn$HybridSequential(), list(
    conv = gluon_conv(cfg$channels %||% 3L, width, 3L, 1L), bn = gluon_bn(width), relu = nn$Activation("relu")))))
  cin <- width
  for (stage in 1:3) {
    cout <- width * 2L^(stage - 1L)
    blocks <- list()
    for (block in seq_len(n)) {
      blocks[[sprintf("block%d", block)]] <- basic_block(cin, cout, if (stage > 1 && block == 1) 2L else 1L, cfg$shortcut)
      cin <- cout
    }
    net <- named(net, stats::setNames(list(named(nn$HybridSequential(), blocks)), sprintf("stage%d", stage)))
  }
  named(net, list(head = named(nn$HybridSequential(), list(
    pool = global_mean(), dense = nn$Dense(as.integer(cfg$num_classes), in_units = as.integer(cin))))))
}

# Canonical tensor suffix -> Gluon's name for it.
GLUON_NAMES <- c(kernel = "weight", gamma = "gamma", beta = "beta", bias = "bias",
                 moving_mean = "running_mean", moving_variance = "running_var")

# The Gluon parameter holding canonical tensor `name`, by structural name.
gluon_parameter <- function(params, name) {
  key <- paste0(sub("\\.[^.]*$", "", name), ".", GLUON_NAMES[[sub("^.*\\.", "", name)]])
  if (is.null(params[[key]])) stop(sprintf("canonical tensor '%s' has no Gluon parameter '%s'", name, key), call. = FALSE)
  params[[key]]
}

# Each of the network's parameters with its value from the canonical weights (R arrays,
# canonical layout), matched by structural name: conv HWIO -> OIHW, dense [in, out] ->
# [out, in]. A list of list(parameter, value), as load_gluon_parameters takes.
resnet_parameters <- function(net, weights) {
  params <- structural_parameters(net)
  lapply(names(weights), function(name) {
    w <- weights[[name]]
    list(gluon_parameter(params, name),
         if (length(dim(w)) == 4L) aperm(w, c(4L, 3L, 1L, 2L)) else if (length(dim(w)) == 2L) t(w) else w)
  })
}

# The canonical tensors `names` as the network holds them now (BN moving statistics
# included), back in the canonical layouts: OIHW -> HWIO, [out, in] -> [in, out].
resnet_canonical <- function(net, names) {
  params <- structural_parameters(net)
  stats::setNames(lapply(names, function(name) {
    w <- gluon_value(gluon_parameter(params, name))
    if (length(dim(w)) == 4L) aperm(w, c(3L, 4L, 2L, 1L)) else if (length(dim(w)) == 2L) t(w) else w
  }), names)
}
