# Loaded by testthat before the tests (run from r/tests/testthat): sources the shared
# library, and finds the orchestrator's Python (.venv: NumPy, jsonschema, dlrosetta) that
# R's readers and writers are checked against. Neither Keras nor reticulate is needed:
# Python runs as a child process, as every stack's launcher runs it.
#
# Twins: tests/conftest.py, julia/test/runtests.jl

R_ROOT <- normalizePath(file.path("..", ".."))
REPO_ROOT <- dirname(R_ROOT)
for (f in list.files(file.path(R_ROOT, "R"), pattern = "\\.R$", full.names = TRUE)) source(f)

PYTHON <- file.path(REPO_ROOT, ".venv", "bin", "python")
skip_without_python <- function() {
  testthat::skip_if_not(file.exists(PYTHON), sprintf("no orchestrator Python at %s (envs/setup.sh builds it)", PYTHON))
}

# Run Python code with the repository's dlrosetta package importable; returns stdout.
# Extra arguments reach the code as sys.argv[1:].
run_python <- function(code, ...) {
  script <- tempfile(fileext = ".py")
  writeLines(code, script)
  out <- suppressWarnings(system2(PYTHON, c(shQuote(script), vapply(c(...), shQuote, "")),
                                  stdout = TRUE, stderr = TRUE, env = paste0("PYTHONPATH=", file.path(REPO_ROOT, "python"))))
  if (!is.null(attr(out, "status"))) stop(sprintf("Python failed:\n%s", paste(out, collapse = "\n")))
  out
}

read_schema <- function(name) jsonlite::fromJSON(file.path(REPO_ROOT, "schemas", name), simplifyVector = FALSE)
