# The binding to Python MXNet through reticulate: which Python, whether MXNet is there,
# its threads and device, R arrays to NumPy and NDArrays, Gluon blocks defined in R,
# named containers, values into and out of Gluon parameters, the forward pass in
# inference mode, the ONNX export (the Python MXNet stack's), and what the kernels are.
#
# This stack drives the Python MXNet library from R through reticulate, as R's keras
# package drives Python Keras: the CRAN mxnet package (MXNet's own R binding) is not
# installable here (no CRAN, no Debian package, and MXNet is retired). It makes the
# same MXNet calls as the Python MXNet stack, so the two train identically and their
# difference in time is R's. Modules are imported with convert = FALSE: results stay
# Python objects, and nothing crosses between R and Python unless the code asks for it
# (py_to_r, as_numpy). Integers MXNet receives are R integers (16L): a double reaches
# Python as 16.0, which MXNet's shape and axis arguments reject.
#
# Twins: python/dlrosetta/stacks/mxnet/__init__.py, python/dlrosetta/stacks/mxnet/trainer.py, r/stacks/r-keras/R/keras.R

# The Python this stack binds reticulate to: RETICULATE_PYTHON (the launcher sets it),
# else the repository's .venvs/mxnet (built from envs/mxnet.txt). Sets
# RETICULATE_PYTHON so that reticulate uses it, and puts the dlrosetta package on
# PYTHONPATH as the launcher does (for the Python MXNet stack's thread settings and
# kernel notes); call before anything touches Python.
bind_stack_python <- function(repo_root) {
  repo_root <- normalizePath(repo_root)
  python <- Sys.getenv("RETICULATE_PYTHON")
  if (!nzchar(python)) {
    python <- file.path(repo_root, ".venvs", "mxnet", "bin", "python")
    Sys.setenv(RETICULATE_PYTHON = python)
  }
  package_dir <- file.path(repo_root, "python")
  path <- strsplit(Sys.getenv("PYTHONPATH"), .Platform$path.sep, fixed = TRUE)[[1]]
  if (!package_dir %in% path) Sys.setenv(PYTHONPATH = paste(c(package_dir, path), collapse = .Platform$path.sep))
  invisible(python)
}

# NULL when MXNet can be imported through reticulate, else why not (the stack then
# writes `skipped` measurements). Starts the embedded Python and, before anything
# imports mxnet, gives MXNet `threads` threads and, for profile mode, its engine setting
# (bulk execution off): it reads them from the environment when it loads (the Python
# stack's configure(), python/dlrosetta/stacks/mxnet/__init__.py).
mxnet_unavailable_reason <- function(threads, profile = FALSE) {
  python <- Sys.getenv("RETICULATE_PYTHON", "reticulate's default Python")
  tryCatch({
    if (!reticulate::py_available(initialize = TRUE)) {
      return(sprintf("reticulate found no usable Python at %s", python))
    }
    reticulate::import("dlrosetta.stacks.mxnet")$configure(as.integer(threads), profile)
    for (module in c("numpy", "mxnet")) {
      if (!reticulate::py_module_available(module)) {
        return(sprintf("Python module %s is not installed in %s (the mxnet environment, envs/mxnet.txt)",
                       module, python))
      }
    }
    if (!reticulate::py_numpy_available()) {
      return(sprintf("reticulate %s cannot load the NumPy of %s (it needs numpy < 2)",
                     utils::packageVersion("reticulate"), python))
    }
    NULL
  }, error = function(e) sprintf("cannot start Python %s through reticulate: %s", python, conditionMessage(e)))
}

# The first GPU MXNet sees ("gpu:0"; MXNet names none), NULL without one (the CPU wheel).
visible_gpu <- function() {
  if (reticulate::py_to_r(reticulate::import("mxnet", convert = FALSE)$context$num_gpus()) > 0) "gpu:0"
}

# The accelerator to train on (its name) or NULL for the CPU, from the spec's device
# and the one MXNet sees: "auto" takes it, "gpu" fails without one, "cpu" never uses it.
pick_accelerator <- function(requested, visible) {
  if (requested == "cpu") return(NULL)
  if (is.null(visible) && requested == "gpu") stop("the run spec asks for a GPU, but mxnet sees none", call. = FALSE)
  visible
}

# The MXNet context of an accelerator (or of the CPU, for NULL).
mxnet_context <- function(accelerator) {
  mx <- reticulate::import("mxnet", convert = FALSE)
  if (is.null(accelerator)) mx$cpu() else mx$gpu(0L)
}

# An R vector or array as a C-ordered NumPy array of dtype (one copy at most): R's
# column-major array becomes a Fortran-ordered NumPy view with the same indexing,
# which ascontiguousarray lays out row-major.
as_numpy <- function(x, dtype) {
  np <- reticulate::import("numpy", convert = FALSE)
  np$ascontiguousarray(reticulate::r_to_py(if (is.null(dim(x))) as.array(x) else x), dtype = dtype)
}

# An R vector or array as an MXNet NDArray of dtype on ctx, same indexing.
nd_array <- function(x, dtype, ctx) {
  reticulate::import("mxnet", convert = FALSE)$nd$array(as_numpy(x, dtype), ctx = ctx, dtype = dtype)
}

# Gluon HybridBlock classes defined in R, made once per process (mxnet must be imported
# first, so not when this file is sourced).
GLUON_CLASSES <- new.env()

# The HybridBlock class `classname`: init(self, ...) creates its layers and attributes;
# forward(self, F, x) is its hybrid_forward, written with the operators of F. Once the
# network is hybridised, MXNet calls it once, with F = mx.sym, to trace the graph it
# then runs itself: no R code runs inside a training step. The functions use only what
# they are given (self, F, x, arguments), so one class serves every instance.
hybrid_block_class <- function(classname, forward, init = NULL) {
  if (is.null(GLUON_CLASSES[[classname]])) {
    gluon <- reticulate::import("mxnet.gluon", convert = FALSE)
    GLUON_CLASSES[[classname]] <- reticulate::PyClass(classname, inherit = gluon$HybridBlock, defs = list(
      `__init__` = function(self, ...) {
        gluon$HybridBlock$`__init__`(self)
        if (!is.null(init)) init(self, ...)
        NULL
      },
      hybrid_forward = function(self, F, x, ...) forward(self, F, x)))
  }
  GLUON_CLASSES[[classname]]
}

# An R value from what reticulate returned: Python objects reached through a converting
# handle (PyClass instances, dict values) come back as R values already, those reached
# through convert = FALSE ones as Python objects.
r_value <- function(x) if (inherits(x, "python.builtin.object")) reticulate::py_to_r(x) else x

# Call a Gluon block (a Python object, not an R function) on its input.
call_block <- function(block, x) reticulate::py_call(block, x)

# A HybridSequential whose children carry names (in order) instead of 0, 1, ...: the
# structural parameter names (stem.bn.gamma) are then the canonical ones.
named <- function(container, children) {
  for (name in names(children)) container$register_child(children[[name]], name)
  container
}

# A Gluon network's parameters under their structural names (stem.bn.gamma, as
# Block.save_parameters names them): a named R list of Parameter objects.
structural_parameters <- function(net) reticulate::py_to_r(net$`_collect_params_with_prefix`())

# Every parameter of a Gluon network (BN moving statistics included), a named R list.
gluon_parameters <- function(net) {
  params <- net$collect_params()
  keys <- vapply(reticulate::iterate(params$keys(), simplify = FALSE), r_value, "")
  stats::setNames(lapply(keys, function(k) reticulate::py_get_item(params, k)), keys)
}

# The parameters the optimiser trains (grad_req not 'null').
trainable_parameters <- function(net) {
  Filter(function(p) r_value(p$grad_req) != "null", gluon_parameters(net))
}

# Trainable parameters as MXNet counts them (their shapes' products).
gluon_parameter_count <- function(net) {
  sum(vapply(trainable_parameters(net), function(p) prod(unlist(r_value(p$shape))), 0))
}

# Initialise a Gluon network on ctx and give every parameter its value (see
# set_gluon_parameters).
load_gluon_parameters <- function(net, values, ctx) {
  net$initialize(reticulate::import("mxnet", convert = FALSE)$init$Zero(), ctx = ctx)
  set_gluon_parameters(net, values, ctx)
}

# Give every parameter of an initialised Gluon network its value, copied into its
# arrays on ctx: `values` is a list of list(parameter, R array in MXNet's layout). Fails
# naming the parameters left without a value.
set_gluon_parameters <- function(net, values, ctx) {
  given <- vapply(values, function(v) r_value(v[[1]]$name), "")
  left <- setdiff(names(gluon_parameters(net)), given)
  if (length(left)) stop(sprintf("Gluon parameters [%s] have no canonical tensor", paste(sort(left), collapse = ", ")),
                         call. = FALSE)
  for (v in values) v[[1]]$set_data(nd_array(v[[2]], "float32", ctx))
  invisible(net)
}

# Whether the hot ops run as fused library kernels, and which: the Python MXNet stack's
# own answer (the same graph runs underneath), so the two never disagree.
kernel_info <- function(model, accelerator) {
  info <- reticulate::import("dlrosetta.stacks.mxnet.trainer")$kernel_info(model == "resnet", accelerator)
  list(fused_kernel = info[[1]], kernel_notes = info[[2]])
}

# A parameter's value as an R array, in MXNet's layout.
gluon_value <- function(parameter) r_value(parameter$data()$asnumpy())

# Rows of the shards' test array as the network's input NDArray on ctx: NHWC images
# become NCHW float32 (aperm in R), tokens int32.
mxnet_input <- function(x, ctx) {
  if (length(dim(x)) == 4L) nd_array(aperm(x, c(1L, 4L, 2L, 3L)), "float32", ctx) else nd_array(x, "int32", ctx)
}

# The network's logits of an input, inference mode (autograd's predict mode, not
# recording: BN moving statistics, no statistic updated), as an R matrix; asnumpy waits
# for MXNet's engine.
mxnet_predict <- function(net, input) {
  with(reticulate::import("mxnet", convert = FALSE)$autograd$predict_mode(), logits <- call_block(net, input))
  r_value(logits$asnumpy())
}

# Write the network with its current values as ONNX as the Python MXNet stack does
# (export_onnx_model: mx2onnx; input `input` in the shards' layout and dtype, output
# `logits`, the batch dimension `batch`); `shape` is one sample's shape in the shards
# ([H, W, C] images, [maxlen] tokens). Returns list(exporter, opset).
export_mxnet_onnx <- function(net, shape, path) {
  sample <- if (length(shape) == 3L) as_numpy(array(0, c(1L, shape)), "float32") else
    as_numpy(array(0L, c(1L, shape)), "int32")
  reticulate::import("dlrosetta.stacks.mxnet.trainer")$export_onnx_model(net, sample, path)
}
