# Loaded by testthat before the tests (run from r/stacks/r-keras/tests/testthat): sources
# the shared R library (r/R), then this stack's R files, as run_stack.R does, and the
# shared suite's fixture writers; binds reticulate to the stack's Python (.venvs/r-keras;
# Keras tests skip, naming why, where it cannot be reached); writes small run specs and
# holds the R reference of the LSTM that the Keras models are checked against.
#
# Twins: tests/stackcheck.py

STACK_DIR <- normalizePath(file.path("..", ".."))
STACK_ID <- basename(STACK_DIR)
REPO_ROOT <- normalizePath(file.path(STACK_DIR, "..", "..", ".."))
for (f in c(list.files(file.path(REPO_ROOT, "r", "R"), pattern = "\\.R$", full.names = TRUE),
            list.files(file.path(STACK_DIR, "R"), pattern = "\\.R$", full.names = TRUE),
            file.path(REPO_ROOT, "r", "tests", "testthat", c("helper-fixtures.R", "helper-stacks.R")))) {
  source(f, local = TRUE)  # here, so the shared helpers see STACK_DIR and STACK_ID
}
bind_stack_python(REPO_ROOT)
if (!nzchar(Sys.getenv("TF_CPP_MIN_LOG_LEVEL"))) Sys.setenv(TF_CPP_MIN_LOG_LEVEL = "1")  # TensorFlow's INFO lines
KERAS_UNAVAILABLE <- keras_unavailable_reason()
KERAS_SKIP_MESSAGE <- paste("Keras unreachable through reticulate:", KERAS_UNAVAILABLE)
skip_without_keras <- function() testthat::skip_if_not(is.null(KERAS_UNAVAILABLE), KERAS_SKIP_MESSAGE)
