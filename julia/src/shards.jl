# npy bundles (docs/shards.md): manifest.json lists .npy files with sha256, dtype and
# shape; data shards and initial-weights files are both bundles. Every file is checked
# against the manifest and any mismatch names the file.
# Twins: python/dlrosetta/npybundle.py + shards.py, r/R/shards.R.

const BUNDLE_FORMAT_VERSION = 1
const BUNDLE_DTYPES = Dict("float32" => Float32, "int32" => Int32)
const SHARD_SPLITS = ("x_train", "y_train", "x_test", "y_test")

"Hex sha256 of a file, streamed (the SHA stdlib reads it in blocks)."
sha256_file(path::AbstractString) = bytes2hex(open(sha256, path))

function read_manifest(path::AbstractString, kind::AbstractString)
    isfile(path) || throw(BundleError("bundle manifest not found: $path"))
    manifest = try
        read_json(path)
    catch e
        e isa JSONError || rethrow()
        throw(BundleError("bundle manifest $path is not valid JSON: $(e.msg)"))
    end
    manifest isa Dict{String,Any} || throw(BundleError("bundle manifest $path is not a JSON object"))
    format = get(manifest, "format", nothing)
    format == "dlrosetta.$kind" ||
        throw(BundleError("$path is a $(repr(format)) manifest, expected \"dlrosetta.$kind\""))
    version = get(manifest, "format_version", nothing)
    version == BUNDLE_FORMAT_VERSION ||
        throw(BundleError("$path: format_version $(repr(version)) is not supported " *
                          "(this reader knows $BUNDLE_FORMAT_VERSION)"))
    return manifest
end

"""
    read_bundle(manifest_path, kind; names = nothing, verify = true) -> (arrays, manifest)

Arrays (all, or those named) as a `Dict{String,Array}` in the reversed (column-major)
layout, each checked for sha256 (when `verify`), dtype and shape against the manifest.
"""
function read_bundle(manifest_path::AbstractString, kind::AbstractString;
                     names = nothing, verify::Bool = true)
    manifest = read_manifest(manifest_path, kind)
    root = dirname(abspath(manifest_path))
    entries = Dict{String,Any}(e["name"] => e for e in manifest["arrays"])
    wanted = names === nothing ? [e["name"] for e in manifest["arrays"]] : collect(String, names)
    arrays = Dict{String,Array}()
    for name in wanted
        haskey(entries, name) || throw(BundleError("$manifest_path: no array named $(repr(name)) " *
                                                   "(has $(join(sort!(collect(keys(entries))), ", ")))"))
        entry = entries[name]
        path = joinpath(root, entry["file"])
        isfile(path) || throw(BundleError("bundle file missing: $path (listed in $manifest_path)"))
        if verify
            digest = sha256_file(path)
            digest == entry["sha256"] ||
                throw(BundleError("checksum mismatch for $path: manifest says $(entry["sha256"]), " *
                                  "file has $digest"))
        end
        array = read_npy(path)
        shape = Tuple(Int.(entry["shape"]))
        dtype = get(BUNDLE_DTYPES, entry["dtype"], nothing)
        (reverse(size(array)) == shape && eltype(array) === dtype) ||
            throw(BundleError("$path: shape/dtype $(reverse(size(array)))/$(eltype(array)) differ " *
                              "from manifest $shape/$(entry["dtype"])"))
        arrays[name] = array
    end
    return arrays, manifest
end

"A data set's four splits (images (C, W, H, N) Float32 or tokens (maxlen, N) Int32)."
struct Shards{X<:Array}
    x_train::X
    y_train::Vector{Int32}
    x_test::X
    y_test::Vector{Int32}
    meta::Dict{String,Any}
    manifest_sha256::String
end

function read_shards(manifest_path::AbstractString; verify::Bool = true)
    arrays, manifest = read_bundle(manifest_path, "shards"; names = SHARD_SPLITS, verify = verify)
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    typeof(x_train) == typeof(x_test) && size(x_train)[1:end-1] == size(x_test)[1:end-1] ||
        throw(BundleError("$manifest_path: x_train and x_test differ in dtype or sample shape"))
    for split in ("train", "test")
        x, y = arrays["x_$split"], arrays["y_$split"]
        (y isa Vector{Int32} && length(y) == size(x, ndims(x))) ||
            throw(BundleError("$manifest_path: y_$split must be int32 [N] with N = $(size(x, ndims(x)))"))
    end
    return Shards(x_train, arrays["y_train"], x_test, arrays["y_test"],
                  Dict{String,Any}(manifest["meta"]), sha256_file(manifest_path))
end
