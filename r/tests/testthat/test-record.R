# Twins: tests/test_record.py, julia/test/test_record.jl.

schema <- jsonlite::fromJSON(file.path(REPO_ROOT, "python", "dlrosetta", "schemas", "record.schema.json"),
                             simplifyVector = FALSE)

ok_fields <- function(...) {
  c(list(status = "ok", stack = "r-keras", language = "r", language_version = "4.2.2", framework = "keras",
         framework_version = "3.15.1", backend = "tensorflow", model = "lstm", dataset = "d",
         hyperparameters = list(model = list(units = 4L), training = list(optimizer = list(epsilon = 1e-8))),
         threads = 2L, seed = 1L, device = "cpu", shards_sha256 = strrep("a", 64), parameter_count = 715602,
         train_loss_per_epoch = 0.1 + 0.2, final_train_loss = 0.1 + 0.2, test_accuracy = 0.5, eval_seconds = 0.25,
         startup_seconds = 3, peak_rss_mb = 900.5, fused_kernel = FALSE, kernel_notes = "loop"),
    record_timing_fields(2.3025850929940455, 64), list(...))
}

test_that("a record has exactly the schema's fields, in its order", {
  expect_setequal(RECORD_FIELDS, unlist(schema$required))
  expect_identical(names(do.call(make_record, ok_fields())), RECORD_FIELDS)
  expect_identical(RECORD_SCHEMA_VERSION, "1.0.0")
})

test_that("written records keep nulls, one-element arrays and every bit of each double", {
  path <- tempfile(fileext = ".json")
  write_record(path, do.call(make_record, ok_fields()))
  back <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  expect_identical(names(back), RECORD_FIELDS)
  expect_true(all(vapply(back[c("reason", "initial_weights_sha256", "steady_epoch_seconds", "run_seconds")], is.null, TRUE)))
  expect_identical(back$epoch_seconds, list(2.3025850929940455))
  expect_identical(back$train_loss_per_epoch, list(0.1 + 0.2))
  expect_identical(back$final_train_loss, 0.1 + 0.2)
  expect_identical(back$hyperparameters$training$optimizer$epsilon, 1e-8)
  expect_identical(back$parameter_count, 715602L)
  expect_identical(back$schema_version, "1.0.0")
  expect_match(back$created_at, "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\+00:00$")
  expect_false(file.exists(paste0(path, ".tmp")))
})

test_that("non-finite numbers are written as Python's json reads them", {
  path <- write_json_atomic(tempfile(), list(a = NaN, b = I(c(Inf, -Inf, NA))))
  expect_identical(gsub("\\s", "", paste(readLines(path), collapse = "")), '{"a":NaN,"b":[Infinity,-Infinity,null]}')
})

test_that("timing fields keep the first epoch apart", {
  t <- record_timing_fields(c(5, 2, 4), 640)
  expect_identical(t$warmup_epoch_seconds, 5)
  expect_identical(t$steady_epoch_seconds, 3)
  expect_identical(t$steady_samples_per_second, 640 / 3)
  expect_identical(t$train_samples_per_epoch, 640L)
  expect_null(record_timing_fields(5, 640)$steady_epoch_seconds)
})

test_that("status and reason are checked like Python's Record", {
  expect_error(do.call(make_record, ok_fields(reason = "why")), "an ok record has no reason")
  expect_error(make_record(status = "skipped", stack = "r-keras"), "a skipped record needs a reason")
  expect_error(make_record(status = "done", reason = "x"), "status must be one of ok, skipped, failed")
  expect_error(do.call(make_record, ok_fields(colour = "red")), "unknown fields colour")
  skipped <- make_record(status = "skipped", reason = "no keras", stack = "r-keras")
  expect_null(skipped$parameter_count)
})
