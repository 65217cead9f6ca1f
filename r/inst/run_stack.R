# Entry point of the r-keras stack: Rscript --vanilla r/inst/run_stack.R RUN_SPEC.json
# (docs/stack-contract.md). Sources the package's R files found next to this script
# (no devtools/pkgload here), binds reticulate to the stack's Python, runs the spec.
# Exits 0 after writing an ok or skipped record; any error exits non-zero, and the
# launcher writes the failed record from stderr.
#
# Twins: python/dlrosetta/stacks/keras/__main__.py, julia/bin/run_stack.jl.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript --vanilla r/inst/run_stack.R RUN_SPEC.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE))
r_root <- normalizePath(file.path(dirname(script), ".."))
for (f in list.files(file.path(r_root, "R"), pattern = "\\.R$", full.names = TRUE)) source(f)
bind_stack_python(dirname(r_root))
run_stack(args[[1]])
