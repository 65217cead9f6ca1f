# The R files form an installable package: NAMESPACE exports exactly the functions
# marked @export, and all of them exist once r/R is sourced.

test_that("NAMESPACE exports every @export function and nothing else", {
  exports <- parseNamespaceFile(basename(R_ROOT), dirname(R_ROOT))$exports
  marked <- unlist(lapply(list.files(file.path(R_ROOT, "R"), full.names = TRUE), function(f) {
    lines <- readLines(f)
    after <- lines[which(lines == "#' @export") + 1]
    sub(" <- function.*$", "", after)
  }))
  expect_setequal(exports, marked)
  expect_true(all(vapply(exports, function(f) is.function(get(f)), TRUE)))
})
