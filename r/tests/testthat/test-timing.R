# Twins: tests/test_runtime.py, julia/test/test_timing.jl.

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

test_that("stopwatch returns the value and the time taken", {
  timed <- stopwatch({ Sys.sleep(0.05); "done" })
  expect_identical(timed$value, "done")
  expect_gte(timed$seconds, 0.05)
})
