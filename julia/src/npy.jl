# NumPy .npy reader: format 1.0, little endian, C order, <f4 (Float32) and <i4 (Int32),
# the only kinds of file npy bundles hold (docs/shards.md).
# Twins: numpy.load in python/dlrosetta/npybundle.py, r/R/npy.R.
#
# A C-order array of shape (d1, ..., dk) has the same bytes as a column-major array of
# shape (dk, ..., d1), so data is read straight into the reversed shape: no copy, no
# permutation. Every Julia array in this package lives in that reversed layout (NHWC
# images are (C, W, H, N); a canonical conv kernel [kh, kw, in, out] is (out, in, kw, kh)).

"An npy file or bundle manifest is missing, malformed, or fails its checksum."
struct BundleError <: Exception
    msg::String
end
Base.showerror(io::IO, e::BundleError) = print(io, "BundleError: ", e.msg)

const NPY_MAGIC = UInt8[0x93, UInt8('N'), UInt8('U'), UInt8('M'), UInt8('P'), UInt8('Y')]
const NPY_DTYPES = Dict("<f4" => Float32, "<i4" => Int32)

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
                              "($(npy_descr(T)), shape $shape) needs $expected"))
        data = Array{T}(undef, reverse(shape)...)
        read!(io, data)
        ENDIAN_BOM == 0x04030201 || map!(ltoh, data, data)
        return data
    end
end

npy_descr(T::Type) = only(k for (k, v) in NPY_DTYPES if v === T)

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
