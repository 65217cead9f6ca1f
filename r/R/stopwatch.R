# Process measurements taken the same way in every language (docs/record.md):
# peak_rss_mb is VmHWM from /proc/self/status (the kernel's high-water mark of resident
# memory, which includes an embedded Python and its frameworks); startup_seconds is
# the process's age from /proc/self/stat, so R's own start and every import count.
#
# Twins: python/dlrosetta/stopwatch.py, julia/src/stopwatch.jl

#' Peak resident memory of this process in MiB (Linux /proc).
#' @export
peak_rss_mb <- function() {
  status <- readLines("/proc/self/status")
  line <- grep("^VmHWM:", status, value = TRUE)
  if (length(line) != 1) stop("no VmHWM line in /proc/self/status")
  as.numeric(strsplit(trimws(sub("^VmHWM:", "", line)), "\\s+")[[1]][1]) / 1024
}

#' Seconds since this process started (Linux); 0 where /proc is unavailable.
#' @export
process_age_seconds <- function() {
  tryCatch({
    stat <- readLines("/proc/self/stat", warn = FALSE)
    # Fields after "pid (comm)": comm may contain spaces and parentheses, so split after
    # the last ")"; starttime is field 22 of stat(5), the 20th after comm.
    after_comm <- strsplit(trimws(sub("^.*\\)", "", stat)), "\\s+")[[1]]
    start_ticks <- as.numeric(after_comm[20])
    uptime <- as.numeric(strsplit(readLines("/proc/uptime", warn = FALSE), " ")[[1]][1])
    ticks_per_second <- as.numeric(system2("getconf", "CLK_TCK", stdout = TRUE))
    age <- uptime - start_ticks / ticks_per_second
    if (!is.finite(age)) 0 else max(0, age)
  }, error = function(e) 0, warning = function(w) 0)
}

#' Evaluate expr and measure its wall-clock seconds: list(value = ..., seconds = ...).
#' Sys.time() has microsecond resolution; proc.time()'s elapsed only milliseconds.
#' @export
stopwatch <- function(expr) {
  start <- Sys.time()
  value <- expr  # forces the lazy argument: the work happens here
  list(value = value, seconds = as.numeric(difftime(Sys.time(), start, units = "secs")))
}
