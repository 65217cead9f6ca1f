# ResNet v1 for CIFAR (He et al. 2016, section 4.2), docs/models.md, built with Keras 3's
# functional API from R. Layers carry the canonical names of the model spec
# (r/R/model_spec.R) spelt by layer_name (stem_conv, stage2_block1_bn1, head_dense, ...),
# which is how the weights load.
#
# Twins: python/dlrosetta/stacks/keras/resnet.py, julia/stacks/julia-native/src/resnet.jl

# Build the ResNet of a run spec's model_config as a Keras model (logits out).
build_resnet <- function(cfg) {
  keras <- reticulate::import("keras", convert = FALSE)
  layers <- keras$layers
  n <- resnet_blocks_per_stage(cfg$depth)
  if (!cfg$shortcut %in% c("A", "B")) stop(sprintf("resnet shortcut must be 'A' or 'B', got '%s'", cfg$shortcut))
  size <- as.integer(cfg$image_size %||% 32L)

  # Padding is explicit (one pixel on every side, or none for 1x1): Keras's "same"
  # pads asymmetrically for stride 2 on even sizes, unlike the other frameworks.
  conv <- function(x, filters, kernel, stride, name) {
    if (kernel == 3L) x <- call_layer(layers$ZeroPadding2D(padding = 1L, name = layer_name(paste0(name, ".pad"))), x)
    call_layer(layers$Conv2D(as.integer(filters), as.integer(kernel), strides = as.integer(stride),
                             padding = "valid", use_bias = FALSE, name = layer_name(name)), x)
  }
  # moving = 0.9 * moving + 0.1 * batch, as PyTorch's momentum 0.1.
  bn <- function(x, name) call_layer(layers$BatchNormalization(momentum = 0.9, epsilon = 1e-5, name = layer_name(name)), x)
  relu <- function(x, name) call_layer(layers$ReLU(name = layer_name(name)), x)

  # Shortcut A where the shape changes: x[:, ::2, ::2, :], the new channels zero-padded
  # equally on both sides.
  slice <- reticulate::import_builtins(convert = FALSE)$slice
  every_other <- reticulate::tuple(slice(NULL), slice(NULL, NULL, 2L), slice(NULL, NULL, 2L), slice(NULL))
  shortcut_a <- function(x, cin, cout) {
    side <- as.integer((cout - cin) / 2)
    keras$ops$pad(reticulate::py_get_item(x, every_other), list(c(0L, 0L), c(0L, 0L), c(0L, 0L), c(side, side)))
  }

  inputs <- keras$Input(shape = reticulate::tuple(size, size, as.integer(cfg$channels %||% 3L)), name = "images")
  x <- relu(bn(conv(inputs, cfg$width, 3L, 1L, "stem.conv"), "stem.bn"), "stem.relu")
  cin <- cfg$width
  for (stage in 1:3) {
    cout <- cfg$width * 2L^(stage - 1L)
    for (block in seq_len(n)) {
      prefix <- sprintf("stage%d.block%d", stage, block)
      stride <- if (stage > 1 && block == 1) 2L else 1L
      y <- relu(bn(conv(x, cout, 3L, stride, paste0(prefix, ".conv1")), paste0(prefix, ".bn1")), paste0(prefix, ".relu1"))
      y <- bn(conv(y, cout, 3L, 1L, paste0(prefix, ".conv2")), paste0(prefix, ".bn2"))
      shortcut <- if (stride == 1L) x else if (cfg$shortcut == "A") shortcut_a(x, cin, cout) else
        bn(conv(x, cout, 1L, 2L, paste0(prefix, ".shortcut.conv")), paste0(prefix, ".shortcut.bn"))
      x <- relu(call_layer(layers$Add(name = layer_name(paste0(prefix, ".add"))), list(y, shortcut)), paste0(prefix, ".relu2"))
      cin <- cout
    }
  }
  x <- call_layer(layers$GlobalAveragePooling2D(name = layer_name("head.pool")), x)
  logits <- call_layer(layers$Dense(as.integer(cfg$num_classes), name = layer_name("head.dense")), x)
  keras$Model(inputs, logits, name = sprintf("resnet%d", as.integer(cfg$depth)))
}
