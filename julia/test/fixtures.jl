# Test fixtures shared by the Julia suites (this folder's runtests.jl and each stack's):
# npy files and bundles written as NumPy and dlrosetta's Python side write them, and the
# language-neutral schemas (schemas/) the tests check documents against.
# Twins: tests/conftest.py, r/tests/testthat/helper-fixtures.R

using DLRosetta

const SCHEMAS = normpath(joinpath(@__DIR__, "..", "..", "schemas"))

"A schema of schemas/ (e.g. \"measurements\"), parsed."
read_schema(name::AbstractString) = read_json(joinpath(SCHEMAS, "$name.schema.json"))

"Write `a` (column-major) as a C-order .npy 1.0 file of the reversed shape, as NumPy would."
function write_npy(path::AbstractString, a::Array{T}) where {T}
    shape = reverse(size(a))
    dims = length(shape) == 1 ? "($(shape[1]),)" : "(" * join(shape, ", ") * ")"
    header = "{'descr': '$(DLRosetta.npy_descr(T))', 'fortran_order': False, 'shape': $dims, }"
    header *= " "^mod(-(10 + length(header) + 1), 64) * "\n"
    open(path, "w") do io
        write(io, DLRosetta.NPY_MAGIC, UInt8[1, 0], htol(UInt16(length(header))), header, a)
    end
    return path
end

"Write an npy bundle (docs/shards.md) of `arrays` (name => array pairs); returns the manifest path."
function write_bundle(dir::AbstractString, kind::AbstractString, arrays, meta = Dict{String,Any}())
    mkpath(dir)
    entries = map(arrays) do (name, a)
        file = write_npy(joinpath(dir, "$name.npy"), a)
        (name = name, file = "$name.npy", dtype = eltype(a) == Float32 ? "float32" : "int32",
         shape = collect(reverse(size(a))), sha256 = sha256_file(file))
    end
    return write_json_atomic(joinpath(dir, "manifest.json"),
                             (format = "dlrosetta.$kind", format_version = 1, arrays = entries, meta = meta))
end

"The initial-weights bundle of `weights` (as `initial_weights` draws them) for `spec`."
write_weights(dir::AbstractString, spec::ModelSpec, weights) =
    write_bundle(dir, "weights", [p.name => weights[p.name] for p in spec.params])
