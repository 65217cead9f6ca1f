# Reader for NumPy .npy files, format 1.0, little-endian float32 / int32, C order: the
# only kind dlrosetta's bundles hold (docs/shards.md), so base R's readBin suffices.
#
# Twins: python/dlrosetta/npybundle.py (np.load), julia/src/npy.jl.

NPY_MAGIC <- as.raw(c(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59))  # "\x93NUMPY"
NPY_DTYPES <- c("<f4" = "float32", "<i4" = "int32")

# The header's dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
parse_npy_header <- function(header, path) {
  field <- function(pattern) {
    m <- regmatches(header, regexec(pattern, header))[[1]]
    if (length(m) < 2) stop(sprintf("%s: malformed npy header %s", path, trimws(header)), call. = FALSE)
    m[[2]]
  }
  descr <- field("'descr':\\s*'([^']*)'")
  if (!descr %in% names(NPY_DTYPES)) {
    stop(sprintf("%s: dtype %s is not supported (bundles hold only <f4 and <i4)", path, descr),
         call. = FALSE)
  }
  if (field("'fortran_order':\\s*(True|False)") != "False") {
    stop(sprintf("%s: Fortran-order npy files are not supported (bundles are C order)", path),
         call. = FALSE)
  }
  dims <- trimws(strsplit(field("'shape':\\s*\\(([^)]*)\\)"), ",", fixed = TRUE)[[1]])
  list(dtype = NPY_DTYPES[[descr]], shape = as.numeric(dims[nzchar(dims)]))
}

#' Read a .npy file into an R vector (1-D) or array whose dim is the file's shape.
#'
#' The file is row-major (last axis fastest) and R arrays are column-major (first axis
#' fastest): the bytes are exactly an R array with the axes reversed, so the reader
#' fills that and transposes it back, so that x[i, j, ...] is the NumPy element
#' [i-1, j-1, ...]. float32 becomes double (exact), int32 integer.
#' @export
read_npy <- function(path) {
  con <- file(path, "rb")
  on.exit(close(con))
  if (!identical(readBin(con, "raw", 6L), NPY_MAGIC)) {
    stop(sprintf("%s is not an npy file (bad magic string)", path), call. = FALSE)
  }
  version <- as.integer(readBin(con, "raw", 2L))
  if (!identical(version, c(1L, 0L))) {
    stop(sprintf("%s: npy format version %s is not supported (only 1.0)",
                 path, paste(version, collapse = ".")), call. = FALSE)
  }
  header_len <- readBin(con, "integer", size = 2L, signed = FALSE, endian = "little")
  header <- parse_npy_header(rawToChar(readBin(con, "raw", header_len)), path)
  n <- prod(header$shape)
  expected_bytes <- 10 + header_len + 4 * n
  if (file.size(path) != expected_bytes) {
    stop(sprintf("%s: %.0f bytes, but its header (shape %s) implies %.0f",
                 path, file.size(path), shape_string(header$shape), expected_bytes), call. = FALSE)
  }
  what <- if (header$dtype == "float32") "double" else "integer"
  data <- readBin(con, what, n = n, size = 4L, endian = "little")
  if (length(header$shape) < 2) return(data)
  dim(data) <- rev(header$shape)
  aperm(data)
}

# The shape of an array read by read_npy (a vector is 1-D) and its dtype name.
npy_shape <- function(x) if (is.null(dim(x))) length(x) else dim(x)
npy_dtype <- function(x) c(double = "float32", integer = "int32")[[typeof(x)]]
shape_string <- function(shape) sprintf("(%s)", paste(shape, collapse = ", "))
