# npy bundles (a folder of .npy files + manifest.json with each file's sha256) and the
# data set shards stored in them (docs/shards.md). Every file is checked against the
# manifest (sha256, shape, dtype); any mismatch stops with a message naming the file.
#
# Twins: python/dlrosetta/npybundle.py + python/dlrosetta/shards.py,
#        julia/src/shards.jl.

BUNDLE_FORMAT_VERSION <- 1L
SHARD_SPLITS <- c("x_train", "y_train", "x_test", "y_test")

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

# A value as JSON text, for messages (NULL reads "null").
json_repr <- function(x) as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null"))

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

#' A data set's shards: list(x_train, y_train, x_test, y_test, meta, manifest_sha256).
#' Images are double arrays [N, 32, 32, 3] (NHWC), tokens integer [N, maxlen], labels
#' integer vectors.
#' @export
read_shards <- function(manifest_path, verify = TRUE) {
  bundle <- read_bundle(manifest_path, "shards", SHARD_SPLITS, verify = verify)
  c(bundle$arrays, list(meta = bundle$manifest$meta, manifest_sha256 = sha256_file(manifest_path)))
}
