# NumPy .npy files and npy bundles (docs/shards.md). Files are format 1.0, little endian,
# C order, <f4 (Float32) or <i4 (Int32): the only kinds of file bundles hold; the writer
# writes them byte for byte as NumPy's np.save. A bundle is a manifest.json listing .npy
# files with sha256, dtype and shape; data shards, weights and logits are all bundles,
# and every file is checked against the manifest, any mismatch naming the file.
#
# A C-order array of shape (d1, ..., dk) has the same bytes as a column-major array of
# shape (dk, ..., d1), so data is read straight into the reversed shape: no copy, no
# permutation. Every Julia array of dlrosetta lives in that reversed layout (NHWC
# images are (C, W, H, N); a canonical conv kernel [kh, kw, in, out] is (out, in, kw, kh)).
# Twins: python/dlrosetta/npy.py, r/R/npy.R

"An npy file or bundle manifest is missing, malformed, or fails its checksum."
struct BundleError <: Exception
    msg::String
end
Base.showerror(io::IO, e::BundleError) = print(io, "BundleError: ", e.msg)

const NPY_MAGIC = UInt8[0x93, UInt8('N'), UInt8('U'), UInt8('M'), UInt8('P'), UInt8('Y')]
const NPY_DTYPES = Dict("<f4" => Float32, "<i4" => Int32)
const NPY_GROWTH_DIGITS = 21   # NumPy's header room for the first axis to grow in place

"The key of `table` (NPY_DTYPES or BUNDLE_DTYPES) that stands for element type `T`."
dtype_name(table::AbstractDict, T::Type) = only(k for (k, v) in table if v === T)

"""
    read_npy(path) -> Array

The array in column-major order with the file's shape reversed.
"""
function read_npy(path::AbstractString)
    isfile(path) || throw(BundleError("npy file not found: $path"))
    open(path, "r") do io
        T, shape, data_offset = read_npy_header(io, path)
        expected = data_offset + prod(shape) * sizeof(T)
        filesize(path) == expected ||
            throw(BundleError("$path: $(filesize(path)) bytes, but its header " *
                              "($(dtype_name(NPY_DTYPES, T)), shape $shape) needs $expected"))
        data = Array{T}(undef, reverse(shape)...)
        read!(io, data)
        ENDIAN_BOM == 0x04030201 || map!(ltoh, data, data)
        return data
    end
end

"""
    write_npy(path, array) -> path

`array` (Float32 or Int32, column-major) as the C-order file of the reversed shape, the
bytes `np.save` writes for it: the header padded with NumPy's room for the first axis to
grow, then to a multiple of 64 bytes, ending in a newline.
"""
function write_npy(path::AbstractString, array::AbstractArray)
    T = eltype(array)
    T in values(NPY_DTYPES) ||
        throw(BundleError("$path: element type $T; npy files hold only $(join(values(NPY_DTYPES), " or "))"))
    shape = reverse(size(array))
    dims = length(shape) == 1 ? "($(shape[1]),)" : "(" * join(shape, ", ") * ")"
    header = "{'descr': '$(dtype_name(NPY_DTYPES, T))', 'fortran_order': False, 'shape': $dims, }"
    isempty(shape) || (header *= " "^(NPY_GROWTH_DIGITS - ndigits(shape[1])))
    header *= " "^(64 - mod(10 + ncodeunits(header) + 1, 64)) * "\n"
    data = convert(Array{T}, array)
    open(path, "w") do io
        write(io, NPY_MAGIC, UInt8[1, 0], htol(UInt16(ncodeunits(header))), header)
        write(io, ENDIAN_BOM == 0x04030201 ? data : htol.(data))
    end
    return path
end

function read_npy_header(io::IO, path::AbstractString)
    bad(what) = throw(BundleError("$path is not a supported .npy file: $what"))
    magic = read(io, 6)
    magic == NPY_MAGIC || bad("no NumPy magic string")
    version = (read(io, UInt8), read(io, UInt8))
    version == (1, 0) || bad("format version $(version[1]).$(version[2]) (only 1.0 is used)")
    header_len = Int(ltoh(read(io, UInt16)))
    header = String(read(io, header_len))
    ncodeunits(header) == header_len || bad("truncated header")
    descr = match(r"'descr'\s*:\s*'([^']*)'", header)
    fortran = match(r"'fortran_order'\s*:\s*(True|False)", header)
    shape = match(r"'shape'\s*:\s*\(([^)]*)\)", header)
    (descr === nothing || fortran === nothing || shape === nothing) && bad("header $(repr(header))")
    T = get(NPY_DTYPES, descr[1], nothing)
    T === nothing && bad("dtype $(descr[1]) (only $(join(keys(NPY_DTYPES), ", ")))")
    fortran[1] == "True" && bad("Fortran order (only C order is used)")
    dims = Tuple(parse(Int, d) for d in split(shape[1], ',') if !isempty(strip(d)))
    return T, dims, 10 + header_len
end

## Bundles

const BUNDLE_FORMAT_VERSION = 1
const BUNDLE_DTYPES = Dict("float32" => Float32, "int32" => Int32)

"""
    write_bundle(directory, kind, arrays, meta) -> manifest path

The bundle of `arrays` (`name => array` pairs, written in their order, each to
`<name>.npy`) with `meta` in its manifest. Any old manifest goes first and the new one is
written last, atomically: a manifest always describes complete files.
"""
function write_bundle(directory::AbstractString, kind::AbstractString, arrays, meta)
    mkpath(directory)
    manifest = joinpath(directory, "manifest.json")
    rm(manifest; force = true)
    entries = [bundle_entry(write_npy(joinpath(directory, "$name.npy"), array), name, array)
               for (name, array) in arrays]
    return write_json_atomic(manifest, (format = "dlrosetta.$kind", format_version = BUNDLE_FORMAT_VERSION,
                                        arrays = entries, meta = meta))
end

"The manifest's entry of `array`, written to `path`."
bundle_entry(path::AbstractString, name::AbstractString, array::AbstractArray) =
    (name = name, file = basename(path), dtype = dtype_name(BUNDLE_DTYPES, eltype(array)),
     shape = collect(reverse(size(array))), sha256 = sha256_file(path))

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
