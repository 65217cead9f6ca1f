# The binding to Python Keras through reticulate: which Python, whether Keras is there,
# thread pools and device, layer names, R arrays to NumPy, the canonical weights into
# and out of a Keras model, its forward pass in inference mode, its ONNX export (the
# Python Keras stack's), and what the kernels are.
#
# R's keras/keras3 packages are themselves reticulate bindings to Python Keras and are
# not installable here (no CRAN), so this stack calls the Python API directly, making
# the same calls as the Python Keras stack. Modules are imported with convert = FALSE:
# results stay Python objects, and nothing crosses between R and Python unless the code
# asks for it (py_to_r, as_numpy).
#
# Keras's layouts are the canonical ones (conv [kh, kw, in, out], dense [in, out], LSTM
# [in, 4u] with gates i, f, g, o), so weights load by name only: tensor
# "<prefix>.<variable>" goes to variable <variable> of layer layer_name(<prefix>).
#
# Twins: python/dlrosetta/stacks/keras/__init__.py, python/dlrosetta/stacks/keras/trainer.py, python/dlrosetta/threads.py

# The Python this stack binds reticulate to: RETICULATE_PYTHON (the launcher sets it),
# else the repository's .venvs/r-keras (built from envs/r-keras.txt). Sets
# RETICULATE_PYTHON so that reticulate uses it, and puts the dlrosetta package on
# PYTHONPATH as the launcher does (for the optimiser shared with the Python Keras
# stack, make_optimizer); call before anything touches Python.
bind_stack_python <- function(repo_root) {
  repo_root <- normalizePath(repo_root)
  python <- Sys.getenv("RETICULATE_PYTHON")
  if (!nzchar(python)) {
    python <- file.path(repo_root, ".venvs", "r-keras", "bin", "python")
    Sys.setenv(RETICULATE_PYTHON = python)
  }
  package_dir <- file.path(repo_root, "python")
  path <- strsplit(Sys.getenv("PYTHONPATH"), .Platform$path.sep, fixed = TRUE)[[1]]
  if (!package_dir %in% path) Sys.setenv(PYTHONPATH = paste(c(package_dir, path), collapse = .Platform$path.sep))
  invisible(python)
}

# The Keras backend: KERAS_BACKEND as for the Python Keras stacks, tensorflow by default.
keras_backend <- function() {
  backend <- Sys.getenv("KERAS_BACKEND")
  if (nzchar(backend)) backend else "tensorflow"
}

# NULL when Keras and its backend can be imported through reticulate, else why not
# (the stack then writes `skipped` measurements). Initialises the embedded Python.
keras_unavailable_reason <- function() {
  python <- Sys.getenv("RETICULATE_PYTHON", "reticulate's default Python")
  tryCatch({
    if (!reticulate::py_available(initialize = TRUE)) {
      return(sprintf("reticulate found no usable Python at %s", python))
    }
    for (module in c("numpy", keras_backend(), "keras")) {
      if (!reticulate::py_module_available(module)) {
        return(sprintf("Python module %s is not installed in %s (the r-keras environment, envs/r-keras.txt)",
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

# Give the backend's thread pools `threads` threads and return the name of the first
# accelerator it sees (NULL: CPU only). Call before the backend's first operation and
# before Keras is imported. The launcher has already set the variables of
# python/dlrosetta/threads.py (OpenMP, OpenBLAS, TF_NUM_*); each backend is also told
# its own way.
configure_backend <- function(threads) {
  threads <- as.integer(threads)
  switch(keras_backend(),
    tensorflow = {
      tf <- reticulate::import("tensorflow")
      tf$config$threading$set_intra_op_parallelism_threads(threads)
      tf$config$threading$set_inter_op_parallelism_threads(threads)
      gpus <- tf$config$list_physical_devices("GPU")
      if (length(gpus)) tf$config$experimental$get_device_details(gpus[[1]])$device_name %||% gpus[[1]]$name
    },
    jax = {
      # XLA sizes its CPU thread pool from NPROC when its client starts (jax.devices()).
      Sys.setenv(NPROC = threads)
      gpus <- Filter(function(d) d$platform != "cpu", reticulate::import("jax")$devices())
      if (length(gpus)) gpus[[1]]$device_kind
    },
    torch = {
      torch <- reticulate::import("torch")
      torch$set_num_threads(threads)
      torch$set_num_interop_threads(threads)
      if (torch$cuda$is_available()) torch$cuda$get_device_name(0L)
    },
    stop(sprintf("unsupported KERAS_BACKEND '%s' (tensorflow, jax or torch)", keras_backend()), call. = FALSE))
}

# The accelerator to train on (its name) or NULL for the CPU, from the spec's device
# and the one the backend sees: "auto" takes it, "gpu" fails without one, "cpu" never
# uses it (the Keras device scope then pins everything to the CPU).
pick_accelerator <- function(requested, visible) {
  if (requested == "cpu") return(NULL)
  if (is.null(visible) && requested == "gpu") {
    stop(sprintf("the run spec asks for a GPU, but Keras's %s backend sees none", keras_backend()), call. = FALSE)
  }
  visible
}

# The Keras layer holding the canonical tensors "<prefix>.<variable>": dots become
# underscores, since Keras's torch backend rejects dots in layer names.
layer_name <- function(prefix) gsub(".", "_", prefix, fixed = TRUE)

# Apply a Keras layer to a tensor (or a list of tensors) in the functional API. Layers
# from a convert = FALSE import are Python objects, not R functions: py_call calls them.
call_layer <- function(layer, x) reticulate::py_call(layer, x)

# An R vector or array as a C-ordered NumPy array of dtype (one copy at most): R's
# column-major array becomes a Fortran-ordered NumPy view with the same indexing,
# which ascontiguousarray lays out row-major.
as_numpy <- function(x, dtype) {
  np <- reticulate::import("numpy", convert = FALSE)
  np$ascontiguousarray(reticulate::r_to_py(if (is.null(dim(x))) as.array(x) else x), dtype = dtype)
}

# Whether the hot ops run as fused library kernels, and which: the Python Keras
# stack's own answer (the same Keras code runs underneath), so the two never disagree.
kernel_info <- function(model, accelerator) {
  info <- reticulate::import("dlrosetta.stacks.keras.trainer")$kernel_info(
    keras_backend(), model == "resnet", accelerator)
  list(fused_kernel = info[[1]], kernel_notes = info[[2]])
}

# A Keras model's variables, keyed "<layer name>/<variable name>".
keras_variables <- function(model) {
  out <- list()
  for (layer in reticulate::iterate(model$layers, simplify = FALSE)) {
    for (v in reticulate::iterate(layer$weights, simplify = FALSE)) {
      out[[paste0(reticulate::py_to_r(layer$name), "/", reticulate::py_to_r(v$name))]] <- v
    }
  }
  out
}

# The key of canonical tensor "<prefix>.<variable>" among keras_variables().
keras_variable_key <- function(name) paste0(layer_name(sub("\\.[^.]*$", "", name)), "/", sub("^.*\\.", "", name))

# Assign canonical weights (R arrays, canonical layout) to a Keras model's variables;
# every tensor must find its variable and every variable get a tensor.
load_keras_weights <- function(model, weights) {
  variables <- keras_variables(model)
  keys <- stats::setNames(keras_variable_key(names(weights)), names(weights))
  unmatched <- names(keys)[!keys %in% names(variables)]
  left <- setdiff(names(variables), keys)
  if (length(unmatched) || length(left)) {
    stop(sprintf("weights do not match the Keras model: no Keras variable for tensors [%s]; no tensor for variables [%s]",
                 paste(unmatched, collapse = ", "), paste(left, collapse = ", ")), call. = FALSE)
  }
  for (name in names(keys)) variables[[keys[[name]]]]$assign(as_numpy(weights[[name]], "float32"))
  invisible(model)
}

# The canonical tensors `names` (the model spec's, in its order) as the Keras model holds
# them now, BN moving statistics included: the Python Keras stack's reader
# (read_canonical_weights), the arrays as R arrays, canonical layout.
canonical_keras_weights <- function(model, names) {
  reticulate::py_to_r(reticulate::import("dlrosetta.stacks.keras.trainer", convert = FALSE)$read_canonical_weights(
    model, as.list(names)))
}

# Rows of the shards' test array (NHWC float32 images, int32 tokens) as a backend tensor
# on the device the model runs on (the Keras device scope run_stack holds).
keras_input <- function(x) {
  reticulate::import("keras", convert = FALSE)$ops$convert_to_tensor(as_numpy(x, npy_dtype(x)))
}

# The model's logits of an input, inference mode (BN moving statistics), as an R matrix:
# Keras's compiled predict step (predict_on_batch), whose NumPy result is complete.
keras_predict <- function(model, input) reticulate::py_to_r(model$predict_on_batch(input))

# Write the model as ONNX with Keras's own exporter, model.export(format = "onnx"), as
# the Python Keras stack does (export_onnx_model: input `input`, output `logits`, batch
# dimension `batch`); returns list(exporter, opset).
export_keras_onnx <- function(model, path) {
  reticulate::import("dlrosetta.stacks.keras.trainer")$export_onnx_model(model, path)
}
