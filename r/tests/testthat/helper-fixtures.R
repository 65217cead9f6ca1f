# Fixture writers shared by the suites of the shared library and of every R stack (the
# stacks' helpers source this file): npy files and bundles written as NumPy and
# dlrosetta's Python write them, and a tiny LSTM configuration.
#
# Twins: tests/conftest.py, julia/test/fixtures.jl

# An R array or vector as a .npy file (format 1.0, C order), written the way NumPy does:
# the header padded with spaces and "\n" so that the data start at a multiple of 64.
write_npy_fixture <- function(path, x) {
  shape <- if (is.null(dim(x))) length(x) else dim(x)
  dims <- if (length(shape) == 1) sprintf("%d,", shape) else paste(shape, collapse = ", ")
  descr <- if (is.integer(x)) "<i4" else "<f4"
  header <- sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims)
  header <- paste0(header, strrep(" ", (64 - (10 + nchar(header) + 1) %% 64) %% 64), "\n")
  con <- file(path, "wb")
  on.exit(close(con))
  writeBin(c(NPY_MAGIC, as.raw(c(1, 0))), con)
  writeBin(nchar(header), con, size = 2, endian = "little")
  writeBin(charToRaw(header), con)
  values <- if (length(shape) > 1) aperm(x) else x  # row-major: last axis fastest
  writeBin(if (is.integer(x)) as.integer(values) else as.numeric(values), con, size = 4, endian = "little")
  invisible(path)
}

# A bundle (docs/shards.md) of named R arrays; returns the manifest path.
write_bundle_fixture <- function(dir, kind, arrays, meta = list(fixture = TRUE)) {
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  entries <- lapply(names(arrays), function(name) {
    x <- arrays[[name]]
    path <- write_npy_fixture(file.path(dir, paste0(name, ".npy")), x)
    list(name = name, file = basename(path), dtype = npy_dtype(x), shape = I(npy_shape(x)),
         sha256 = sha256_file(path))
  })
  manifest <- file.path(dir, "manifest.json")
  jsonlite::write_json(list(format = paste0("dlrosetta.", kind), format_version = 1L, arrays = entries, meta = meta),
                       manifest, auto_unbox = TRUE, pretty = TRUE, digits = NA)
  manifest
}

TINY_LSTM <- list(vocab_size = 20L, embedding_dim = 5L, units = 4L, maxlen = 6L, num_classes = 2L)
