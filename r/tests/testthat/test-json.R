# Twins: none

test_that("doubles read back bit for bit, with the fewest digits that do", {
  x <- c(0.1 + 0.2, 2.3025850929940455, 1e-8, 1 / 3, 5e-324, .Machine$double.xmax, 0.5, 715602)
  path <- write_json_atomic(tempfile(fileext = ".json"), list(x = I(x), scalar = 0.1 + 0.2))
  back <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  expect_identical(unlist(back$x), x)
  expect_identical(back$scalar, 0.1 + 0.2)
  text <- paste(readLines(path), collapse = "")
  expect_match(text, "0.30000000000000004", fixed = TRUE)  # 17 digits where 15 and 16 do not round-trip
  expect_match(text, "[0.30000000000000004, 2.3025850929940455, 1e-08, ", fixed = TRUE)
  expect_match(text, ", 0.5, 715602]", fixed = TRUE)
})

test_that("scalars are unboxed, I() keeps arrays, NULL and NA become null", {
  path <- write_json_atomic(tempfile(), list(n = 3L, one = I(2.5), s = "a", none = NULL, na = NA,
                                             nested = list(flag = TRUE, empty = NULL)))
  expect_identical(gsub("\\s", "", paste(readLines(path), collapse = "")),
                   '{"n":3,"one":[2.5],"s":"a","none":null,"na":null,"nested":{"flag":true,"empty":null}}')
})

test_that("non-finite numbers are written as Python's json reads them", {
  path <- write_json_atomic(tempfile(), list(a = NaN, b = I(c(Inf, -Inf, NA))))
  expect_identical(gsub("\\s", "", paste(readLines(path), collapse = "")), '{"a":NaN,"b":[Infinity,-Infinity,null]}')
})

test_that("the write is atomic: the folder is created, no temporary file is left", {
  path <- file.path(tempfile("json"), "deeper", "out.json")
  expect_identical(write_json_atomic(path, list(a = 1L)), path)
  expect_true(file.exists(path))
  expect_false(file.exists(paste0(path, ".tmp")))
  expect_identical(list.files(dirname(path)), "out.json")
})

test_that("json_repr and %||% handle JSON null", {
  expect_identical(json_repr(NULL), "null")
  expect_identical(json_repr("x"), '"x"')
  expect_identical(NULL %||% 3L, 3L)
  expect_identical(FALSE %||% 3L, FALSE)
})
