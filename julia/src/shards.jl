# Data shards (docs/shards.md): a data set's train and test splits as one npy bundle.
# Twins: python/dlrosetta/shards.py, r/R/shards.R

const SHARD_SPLITS = ("x_train", "y_train", "x_test", "y_test")

"A data set's four splits (images (C, W, H, N) Float32 or tokens (maxlen, N) Int32)."
struct Shards{X<:Array}
    x_train::X
    y_train::Vector{Int32}
    x_test::X
    y_test::Vector{Int32}
    meta::Dict{String,Any}
end

"""
    read_shards(manifest_path; verify = true) -> Shards

The four splits, each file checked against the manifest (`verify`: its sha256 too).
"""
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
                  Dict{String,Any}(manifest["meta"]))
end
