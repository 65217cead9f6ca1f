# The shared library is an installable package with no framework in it: NAMESPACE
# exports exactly the functions marked @export, all of which exist once r/R is sourced,
# and nothing reaches for Keras or reticulate (stacks bind their frameworks themselves).
#
# Twins: none

r_files <- list.files(file.path(R_ROOT, "R"), full.names = TRUE)

test_that("NAMESPACE exports every @export function and nothing else", {
  exports <- parseNamespaceFile(basename(R_ROOT), dirname(R_ROOT))$exports
  marked <- unlist(lapply(r_files, function(f) {
    lines <- readLines(f)
    sub(" <- function.*$", "", lines[which(lines == "#' @export") + 1])
  }))
  expect_setequal(exports, marked)
  expect_true(all(vapply(exports, function(f) is.function(get(f)), TRUE)))
})

test_that("no framework and no Python binding in the shared library", {
  code <- unlist(lapply(r_files, readLines))
  expect_false(any(grepl("reticulate|keras", code, ignore.case = TRUE)))
  imports <- read.dcf(file.path(R_ROOT, "DESCRIPTION"), fields = "Imports")[[1]]
  expect_identical(trimws(strsplit(imports, ",")[[1]]), "jsonlite")
})

test_that("every file names its twins in its header", {
  for (f in c(r_files, list.files(file.path(R_ROOT, "tests", "testthat"), "\\.R$", full.names = TRUE))) {
    lines <- readLines(f)
    header <- lines[seq_len(which(!startsWith(lines, "#"))[1] - 1)]
    expect_match(utils::tail(header, 1), "^# Twins: ", label = basename(f))
  }
})
