# NumPy .npy files and npy bundles (docs/shards.md). A file is format 1.0, little-endian
# float32 / int32, C order: the only kind dlrosetta's bundles hold, so base R's readBin
# and writeBin suffice; the writer writes the bytes NumPy's np.save writes. A bundle is a
# folder of .npy files with a manifest.json giving each file's sha256, shape and dtype
# (data shards, weights and logits are all bundles); every file is checked against it,
# and any mismatch stops with a message naming the file.
#
# Twins: python/dlrosetta/npy.py, julia/src/npy.jl

NPY_MAGIC <- as.raw(c(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59))  # "\x93NUMPY"
NPY_DTYPES <- c("<f4" = "float32", "<i4" = "int32")
NPY_GROWTH_DIGITS <- 21L  # NumPy's header room for the first axis to grow in place

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

#' Write an R vector or array (double as float32, integer as int32) as a .npy file of its
#' shape, the bytes np.save writes: the header padded with NumPy's room for the first
#' axis to grow, then to a multiple of 64 bytes, ending in a newline; the data row-major
#' (last axis fastest), so read_npy, and NumPy, read the same x[i, j, ...] back.
#' @export
write_npy <- function(path, x) {
  if (!typeof(x) %in% c("double", "integer")) {
    stop(sprintf("%s: an R %s cannot be written; npy files hold only float32 (double) and int32 (integer)",
                 path, typeof(x)), call. = FALSE)
  }
  shape <- as.numeric(npy_shape(x))
  dims <- if (length(shape) == 1) sprintf("%.0f,", shape) else paste(sprintf("%.0f", shape), collapse = ", ")
  header <- sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                    names(NPY_DTYPES)[NPY_DTYPES == npy_dtype(x)], dims)
  header <- paste0(header, strrep(" ", NPY_GROWTH_DIGITS - nchar(sprintf("%.0f", shape[1]))))
  header <- paste0(header, strrep(" ", 64L - (10L + nchar(header) + 1L) %% 64L), "\n")
  con <- file(path, "wb")
  on.exit(close(con))
  writeBin(c(NPY_MAGIC, as.raw(c(1, 0))), con)
  writeBin(nchar(header), con, size = 2L, endian = "little")
  writeBin(charToRaw(header), con)
  writeBin(as.vector(if (length(shape) > 1) aperm(x) else x), con, size = 4L, endian = "little")
  invisible(path)
}

# The shape of an array read by read_npy (a vector is 1-D) and its dtype name.
npy_shape <- function(x) if (is.null(dim(x))) length(x) else dim(x)
npy_dtype <- function(x) c(double = "float32", integer = "int32")[[typeof(x)]]
shape_string <- function(shape) sprintf("(%s)", paste(shape, collapse = ", "))

BUNDLE_FORMAT_VERSION <- 1L

#' sha256 of a file, hex. Base R has no sha256, so this calls GNU coreutils' sha256sum.
#' @export
sha256_file <- function(path) {
  tool <- Sys.which("sha256sum")
  if (!nzchar(tool)) {
    stop(sprintf("cannot verify %s: sha256sum (GNU coreutils) is not on PATH", path), call. = FALSE)
  }
  if (!file.exists(path)) stop(sprintf("cannot hash %s: file not found", path), call. = FALSE)
  out <- suppressWarnings(system2(tool, c("--", shQuote(path)), stdout = TRUE, stderr = TRUE))
  digest <- sub("^\\\\?([0-9a-f]{64}) .*$", "\\1", out[1])
  if (!is.null(attr(out, "status")) || !grepl("^[0-9a-f]{64}$", digest)) {
    stop(sprintf("sha256sum failed on %s: %s", path, paste(out, collapse = " ")), call. = FALSE)
  }
  digest
}

#' Write a bundle of kind `kind` ("shards", "weights", "logits") in `directory`: each
#' array of the named list `arrays` (see write_npy) to <name>.npy, in the list's order,
#' then the manifest with `meta`, last and atomically; an old manifest is removed first,
#' so a manifest always describes complete files. Returns the manifest's path.
#' @export
write_bundle <- function(directory, kind, arrays, meta) {
  dir.create(directory, recursive = TRUE, showWarnings = FALSE)
  manifest <- file.path(directory, "manifest.json")
  unlink(manifest)
  entries <- lapply(names(arrays), function(name) {
    x <- arrays[[name]]
    path <- write_npy(file.path(directory, paste0(name, ".npy")), x)
    list(name = name, file = basename(path), dtype = npy_dtype(x), shape = I(npy_shape(x)),
         sha256 = sha256_file(path))
  })
  if (!length(meta)) meta <- structure(list(), names = character())  # {} rather than []
  write_json_atomic(manifest, list(format = paste0("dlrosetta.", kind), format_version = BUNDLE_FORMAT_VERSION,
                                   arrays = entries, meta = meta))
}

#' Read and check a bundle's manifest.json; kind is "shards", "weights" or NULL (any).
#' @export
read_manifest <- function(manifest_path, kind = NULL) {
  if (!file.exists(manifest_path)) stop(sprintf("bundle manifest not found: %s", manifest_path), call. = FALSE)
  manifest <- tryCatch(
    jsonlite::fromJSON(manifest_path, simplifyVector = FALSE),
    error = function(e) stop(sprintf("bundle manifest %s is not valid JSON: %s",
                                     manifest_path, conditionMessage(e)), call. = FALSE))
  if (!is.null(kind) && !identical(manifest$format, paste0("dlrosetta.", kind))) {
    stop(sprintf("%s is a %s manifest, expected 'dlrosetta.%s'",
                 manifest_path, json_repr(manifest$format), kind), call. = FALSE)
  }
  if (!identical(manifest$format_version, BUNDLE_FORMAT_VERSION)) {
    stop(sprintf("%s: format_version %s is not supported (this reader knows %d)",
                 manifest_path, json_repr(manifest$format_version), BUNDLE_FORMAT_VERSION), call. = FALSE)
  }
  manifest
}

#' Load the arrays of a bundle (all, or those named), verifying sha256, shape and dtype.
#' Returns list(arrays = named list of R arrays (see read_npy), manifest = the manifest).
#' @export
read_bundle <- function(manifest_path, kind = NULL, names = NULL, verify = TRUE) {
  manifest <- read_manifest(manifest_path, kind)
  entries <- stats::setNames(manifest$arrays, vapply(manifest$arrays, `[[`, "", "name"))
  wanted <- if (is.null(names)) base::names(entries) else names
  root <- dirname(manifest_path)
  arrays <- lapply(stats::setNames(nm = wanted), function(name) {
    e <- entries[[name]]
    if (is.null(e)) {
      stop(sprintf("%s: no array named '%s' (has %s)", manifest_path, name,
                   paste(sort(base::names(entries)), collapse = ", ")), call. = FALSE)
    }
    path <- file.path(root, e$file)
    if (!file.exists(path)) {
      stop(sprintf("shard file missing: %s (listed in %s)", path, manifest_path), call. = FALSE)
    }
    if (verify) {
      digest <- sha256_file(path)
      if (digest != e$sha256) {
        stop(sprintf("checksum mismatch for %s: manifest says %s, file has %s", path, e$sha256, digest),
             call. = FALSE)
      }
    }
    x <- read_npy(path)
    want_shape <- as.numeric(unlist(e$shape))
    if (!identical(as.numeric(npy_shape(x)), want_shape) || npy_dtype(x) != e$dtype) {
      stop(sprintf("%s: shape/dtype %s/%s differ from manifest %s/%s", path, shape_string(npy_shape(x)),
                   npy_dtype(x), shape_string(want_shape), e$dtype), call. = FALSE)
    }
    x
  })
  list(arrays = arrays, manifest = manifest)
}
