# JSON writing for everything a stack hands back (measurements, check output): written
# atomically, and with doubles that read back as the very same doubles in Python.
#
# Twins: python/dlrosetta/measurements.py, julia/src/json.jl

#' Write any list as JSON through a temporary file renamed into place, so readers never
#' see half a file. Scalars are unboxed (wrap a vector in I() to keep it an array),
#' NULL and NA become null, and doubles keep every bit.
#' @export
write_json_atomic <- function(path, data) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  text <- jsonlite::toJSON(exact_doubles(data), auto_unbox = TRUE, null = "null", na = "null",
                           json_verbatim = TRUE, pretty = TRUE)
  tmp <- paste0(path, ".tmp")
  writeLines(text, tmp)
  if (!file.rename(tmp, path)) stop(sprintf("cannot move %s to %s", tmp, path))
  invisible(path)
}

# jsonlite prints at most 15 significant digits, which does not round-trip every double.
# Doubles are formatted here instead, with the fewest of 15, 16 or 17 digits that read
# back exactly (17 always do); non-finite values as Python's json writes them.
exact_doubles <- function(x) {
  if (is.list(x)) {
    x[] <- lapply(x, exact_doubles)
    return(x)
  }
  if (!is.double(x)) return(x)
  text <- sprintf("%.15g", x)
  for (digits in c(16, 17)) {
    inexact <- which(is.finite(x))
    inexact <- inexact[as.numeric(text[inexact]) != x[inexact]]
    text[inexact] <- sprintf("%.*g", digits, x[inexact])
  }
  text[is.nan(x)] <- "NaN"
  text[x %in% Inf] <- "Infinity"
  text[x %in% -Inf] <- "-Infinity"
  text[is.na(x) & !is.nan(x)] <- "null"
  if (length(x) == 1 && !inherits(x, "AsIs")) return(structure(text, class = "json"))
  structure(sprintf("[%s]", paste(text, collapse = ", ")), class = "json")
}

# A value as JSON text, for messages (NULL reads "null").
json_repr <- function(x) as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null"))

# JSON null arrives as NULL: a with its default b.
`%||%` <- function(a, b) if (is.null(a)) b else a
