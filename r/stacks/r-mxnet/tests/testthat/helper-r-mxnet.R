# Loaded by testthat before the tests (run from r/stacks/r-mxnet/tests/testthat): sources
# the shared R library (r/R), then this stack's R files, as run_stack.R does, and the
# shared suite's fixture writers; binds reticulate to the stack's Python (.venvs/mxnet;
# MXNet tests skip, naming why, where it cannot be reached) with one MXNet thread; writes
# small run specs and holds the R reference of the LSTM that the Gluon models are
# checked against.
#
# Twins: tests/stackcheck.py, r/stacks/r-keras/tests/testthat/helper-r-keras.R

STACK_DIR <- normalizePath(file.path("..", ".."))
STACK_ID <- basename(STACK_DIR)
REPO_ROOT <- normalizePath(file.path(STACK_DIR, "..", "..", ".."))
for (f in c(list.files(file.path(REPO_ROOT, "r", "R"), pattern = "\\.R$", full.names = TRUE),
            list.files(file.path(STACK_DIR, "R"), pattern = "\\.R$", full.names = TRUE),
            file.path(REPO_ROOT, "r", "tests", "testthat", c("helper-fixtures.R", "helper-stacks.R")))) {
  source(f, local = TRUE)  # here, so the shared helpers see STACK_DIR and STACK_ID
}
bind_stack_python(REPO_ROOT)
MXNET_UNAVAILABLE <- mxnet_unavailable_reason(1L)
MXNET_SKIP_MESSAGE <- paste("MXNet unreachable through reticulate:", MXNET_UNAVAILABLE)
skip_without_mxnet <- function() testthat::skip_if_not(is.null(MXNET_UNAVAILABLE), MXNET_SKIP_MESSAGE)

# A Gluon network's output for an R array input (inference mode), as an R array.
forward <- function(net, x, dtype) {
  r_value(call_block(net, nd_array(x, dtype, mxnet_context(NULL)))$asnumpy())
}
