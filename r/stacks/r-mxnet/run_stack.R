# Entry point of the r-mxnet stack (stack.yaml):
#   Rscript --vanilla r/stacks/r-mxnet/run_stack.R RUN_SPEC.json
# This stack drives the Python MXNet library from R through reticulate, as R's keras
# package drives Python Keras: the CRAN mxnet package is not installable here (no CRAN,
# no Debian package, and MXNet is retired).
# Sources the shared R library (r/R) and then this stack's R files (no devtools or
# pkgload here), binds reticulate to the stack's Python, and runs the spec. Exits 0
# after writing ok or skipped measurements; any error exits non-zero, and the launcher
# records the failure from stderr.
#
# Twins: python/dlrosetta/stacks/mxnet/__main__.py, r/stacks/r-keras/run_stack.R, julia/stacks/julia-native/run_stack.jl

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript --vanilla r/stacks/r-mxnet/run_stack.R RUN_SPEC.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE))
stack_dir <- normalizePath(dirname(script))
repo_root <- normalizePath(file.path(stack_dir, "..", "..", ".."))
for (dir in c(file.path(repo_root, "r", "R"), file.path(stack_dir, "R"))) {
  for (f in list.files(dir, pattern = "\\.R$", full.names = TRUE)) source(f)
}
bind_stack_python(repo_root)
run_stack(args[[1]])
