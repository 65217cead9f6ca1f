# Twins: none

schema <- read_schema("measurements.schema.json")

ok_fields <- function(...) {
  modifyList(list(status = "ok", stack = "some-stack", model = "lstm", dataset = "d", language_version = "4.2.2",
                  framework_version = "3.15.1", device = "cpu", parameter_count = 715602,
                  epoch_seconds = 2.3025850929940455, train_loss_per_epoch = 0.1 + 0.2, test_accuracy_per_epoch = 0.5,
                  eval_seconds_per_epoch = 0.25, startup_seconds = 3, peak_rss_mb = 900.5, fused_kernel = FALSE,
                  kernel_notes = "loop"), list(...))
}
write_ok <- function(...) {
  path <- tempfile(fileext = ".json")
  do.call(write_measurements, c(list(path), ok_fields(...)))
  path
}

# Validate written files with the schema itself, through the orchestrator's jsonschema.
schema_errors <- function(paths) {
  run_python(c("import json, sys, jsonschema",
               "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))",
               "for p in sys.argv[2:]:",
               "    for e in v.iter_errors(json.load(open(p))): print(p, e.message)"),
             file.path(REPO_ROOT, "schemas", "measurements.schema.json"), paths)
}

test_that("the fields are the schema's, in its order, with its required ones", {
  expect_identical(MEASUREMENTS_FIELDS, names(schema$properties))
  expect_identical(MEASUREMENTS_REQUIRED, unlist(schema$required))
  expect_setequal(MEASUREMENTS_REQUIRED_OK, unlist(schema$then$required))
  expect_identical(schema$properties$measurements_version$const, MEASUREMENTS_VERSION)
  expect_setequal(MEASUREMENTS_STATUSES, unlist(schema$properties$status$enum))
  arrays <- names(Filter(function(p) identical(p$type, "array"), schema$properties))
  expect_setequal(MEASUREMENTS_ARRAYS, arrays)
})

test_that("ok measurements keep one-element arrays, null reason and every bit of each double", {
  path <- tempfile(fileext = ".json")
  written <- do.call(write_measurements, c(list(path), ok_fields()))
  back <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  expect_identical(names(back), MEASUREMENTS_FIELDS)
  expect_identical(names(written), MEASUREMENTS_FIELDS)
  expect_identical(back$measurements_version, 2L)
  expect_null(back$reason)
  expect_identical(back$epoch_seconds, list(2.3025850929940455))
  expect_identical(back$train_loss_per_epoch, list(0.1 + 0.2))
  expect_identical(back$test_accuracy_per_epoch, list(0.5))
  expect_identical(back$eval_seconds_per_epoch, list(0.25))
  expect_identical(back$parameter_count, 715602L)
  expect_false(back$fused_kernel)
  expect_false(file.exists(paste0(path, ".tmp")))
})

test_that("skipped measurements hold a reason and leave out what was not measured", {
  path <- tempfile(fileext = ".json")
  write_measurements(path, status = "skipped", reason = "no keras", stack = "some-stack", model = "lstm",
                     dataset = "d", language_version = "4.2.2")
  back <- jsonlite::fromJSON(path, simplifyVector = FALSE)
  expect_identical(names(back), c("measurements_version", "status", "reason", "stack", "model", "dataset",
                                  "language_version"))
  expect_identical(back$reason, "no keras")
})

test_that("written measurements validate against schemas/measurements.schema.json", {
  skip_without_python()
  paths <- c(write_ok(), write_ok(epoch_seconds = c(3, 1.5), train_loss_per_epoch = c(0.7, 0.6),
                                  test_accuracy_per_epoch = c(0.5, 0.75), eval_seconds_per_epoch = c(0.2, 0.1),
                                  fused_kernel = NULL, kernel_notes = NULL))
  skipped <- tempfile(fileext = ".json")
  write_measurements(skipped, status = "skipped", reason = "why", stack = "some-stack", model = "resnet", dataset = "d")
  expect_identical(schema_errors(c(paths, skipped)), character())
  # The validator does catch what write_measurements cannot know, e.g. a zero epoch time.
  expect_match(schema_errors(write_ok(epoch_seconds = 0)), "less than or equal to the minimum")
  expect_match(schema_errors(write_ok(test_accuracy_per_epoch = c(0.5, 1.5))), "greater than the maximum")
})

test_that("status, reason and field names are checked", {
  expect_error(write_ok(reason = "why"), "ok measurements have no reason")
  expect_error(write_measurements(tempfile(), status = "skipped", stack = "some-stack", model = "lstm", dataset = "d"),
               "skipped measurements need a reason")
  expect_error(write_measurements(tempfile(), status = "skipped", reason = "", stack = "some-stack", model = "lstm",
                                  dataset = "d"), "need a reason")
  expect_error(write_ok(status = "failed"), "status must be one of ok, skipped, got \"failed\"")
  expect_error(write_ok(colour = "red", steady_epoch_seconds = 1), "unknown fields colour, steady_epoch_seconds")
  expect_error(write_ok(measurements_version = 2L), "unknown fields measurements_version")
  expect_error(write_measurements(tempfile(), status = "skipped", reason = "why", stack = "some-stack"),
               "skipped measurements lack model, dataset")
  fields <- ok_fields()
  fields$test_accuracy_per_epoch <- NULL
  expect_error(do.call(write_measurements, c(list(tempfile()), fields)), "ok measurements lack test_accuracy_per_epoch")
  expect_error(write_ok(test_accuracy = 0.5), "unknown fields test_accuracy")  # version 1's single accuracy
  fields <- ok_fields()
  fields["peak_rss_mb"] <- list(NULL)
  expect_error(do.call(write_measurements, c(list(tempfile()), fields)), "ok measurements lack peak_rss_mb")
})
