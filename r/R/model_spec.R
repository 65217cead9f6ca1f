# The model spec: the canonical tensors of each model (names, shapes, initialisers,
# trainability) in the canonical layouts (docs/models.md), the parameter count, and
# initial weights drawn by the documented scheme. No framework here: a stack maps
# these names onto its own variables.
#
# Twins: python/dlrosetta/model_spec.py, julia/src/model_spec.jl

param <- function(name, shape, init, trainable = TRUE, limit = NULL) {
  list(name = name, shape = as.integer(shape), init = init, limit = limit, trainable = trainable)
}
conv_param <- function(name, k, cin, cout) param(paste0(name, ".kernel"), c(k, k, cin, cout), "he_uniform")
bn_params <- function(name, c) {
  list(param(paste0(name, ".gamma"), c, "ones"), param(paste0(name, ".beta"), c, "zeros"),
       param(paste0(name, ".moving_mean"), c, "zeros", trainable = FALSE),
       param(paste0(name, ".moving_variance"), c, "ones", trainable = FALSE))
}

#' Basic blocks per ResNet stage: depth is 6n+2.
#' @export
resnet_blocks_per_stage <- function(depth) {
  if (depth < 8 || (depth - 2) %% 6 != 0) {
    stop(sprintf("resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got %s", depth), call. = FALSE)
  }
  as.integer((depth - 2) %/% 6)
}

resnet_params <- function(depth, width, shortcut, num_classes, channels = 3L) {
  if (!shortcut %in% c("A", "B")) stop(sprintf("resnet shortcut must be 'A' or 'B', got '%s'", shortcut), call. = FALSE)
  n <- resnet_blocks_per_stage(depth)
  params <- c(list(conv_param("stem.conv", 3L, channels, width)), bn_params("stem.bn", width))
  cin <- width
  for (stage in 1:3) {
    cout <- width * 2L^(stage - 1L)
    for (block in seq_len(n)) {
      prefix <- sprintf("stage%d.block%d", stage, block)
      params <- c(params, list(conv_param(paste0(prefix, ".conv1"), 3L, cin, cout)), bn_params(paste0(prefix, ".bn1"), cout),
                  list(conv_param(paste0(prefix, ".conv2"), 3L, cout, cout)), bn_params(paste0(prefix, ".bn2"), cout))
      if (stage > 1 && block == 1 && shortcut == "B") {
        params <- c(params, list(conv_param(paste0(prefix, ".shortcut.conv"), 1L, cin, cout)),
                    bn_params(paste0(prefix, ".shortcut.bn"), cout))
      }
      cin <- cout
    }
  }
  c(params, list(param("head.dense.kernel", c(cin, num_classes), "glorot_uniform"),
                 param("head.dense.bias", num_classes, "zeros")))
}

lstm_params <- function(vocab_size, embedding_dim, units, num_classes) {
  g <- 4L * units
  list(param("embedding.embeddings", c(vocab_size, embedding_dim), "uniform", limit = 0.05),
       param("lstm.kernel", c(embedding_dim, g), "uniform", limit = 1 / sqrt(units)),
       param("lstm.recurrent_kernel", c(units, g), "uniform", limit = 1 / sqrt(units)),
       param("lstm.bias", g, "lstm_bias"),
       param("head.dense.kernel", c(units, num_classes), "glorot_uniform"),
       param("head.dense.bias", num_classes, "zeros"))
}

#' The spec of a model from a run spec's model_config: list(model, params), params a
#' list of list(name, shape, init, limit, trainable) in canonical order.
#' @export
model_spec <- function(model, cfg) {
  params <- switch(model,
    resnet = resnet_params(cfg$depth, cfg$width, cfg$shortcut, cfg$num_classes, cfg$channels %||% 3L),
    lstm = lstm_params(cfg$vocab_size, cfg$embedding_dim, cfg$units, cfg$num_classes),
    stop(sprintf("unknown model '%s'; expected resnet or lstm", model), call. = FALSE))
  list(model = model, params = params)
}

#' The canonical tensor names of a spec, in order.
#' @export
param_names <- function(spec) vapply(spec$params, `[[`, "", "name")

#' Trainable parameters (BN moving statistics are state, not parameters).
#' @export
parameter_count <- function(spec) {
  sum(vapply(spec$params, function(p) if (p$trainable) prod(as.numeric(p$shape)) else 0, 0))
}

param_limit <- function(p) {
  shape <- p$shape
  fans <- if (length(shape) == 4) prod(shape[1:2]) * shape[3:4] else shape[c(1, length(shape))]
  switch(p$init, he_uniform = sqrt(6 / fans[1]), glorot_uniform = sqrt(6 / sum(fans)), uniform = p$limit,
         stop(sprintf("unknown init '%s' for %s", p$init, p$name)))
}

#' All tensors of a spec drawn in canonical order by the documented scheme from R's
#' generator seeded with seed (the numbers differ from NumPy's draws:
#' `initial_weights: per-stack` in a study). Named list of R arrays, canonical layout.
#' @export
initial_weights <- function(spec, seed) {
  set.seed(seed)
  values <- lapply(spec$params, function(p) {
    n <- prod(p$shape)
    v <- switch(p$init, zeros = numeric(n), ones = rep(1, n),
                lstm_bias = rep(c(0, 1, 0, 0), each = n / 4),  # forget gate opens at start
                { limit <- param_limit(p); stats::runif(n, -limit, limit) })
    if (length(p$shape) > 1) array(v, dim = p$shape) else v
  })
  stats::setNames(values, param_names(spec))
}
