# Twins: none

test_that("peak RSS is at least what this process holds", {
  held <- numeric(40e6)  # 320 MB of zeros, written, so resident
  expect_gte(peak_rss_mb(), 40e6 * 8 / 2^20)
  rm(held)
})

test_that("process age counts from the start of this R process", {
  age <- process_age_seconds()
  expect_gt(age, 0)
  # proc.time's elapsed counts from R's own start, a moment after the process began.
  expect_gte(age, proc.time()[["elapsed"]] - 0.1)
})

test_that("stopwatch evaluates its expression once, inside, and returns its value", {
  runs <- 0
  timed <- stopwatch({ runs <- runs + 1; "done" })
  expect_identical(timed$value, "done")
  expect_identical(runs, 1)
  expect_true(is.double(timed$seconds) && length(timed$seconds) == 1 && timed$seconds >= 0)
})
