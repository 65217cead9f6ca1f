# The stack's float32 GEMM: the newest OpenBLAS on the machine. Julia 1.5 bundles
# OpenBLAS 0.3.9, which knows neither AMD's Zen 3/4 nor Intel's Xeons after Cascade Lake
# and falls back to its SSE kernels there ("Barcelona", "Prescott"). Debian's
# libopenblas64-0-pthread (0.3.21 in bookworm; envs/setup.sh installs it) detects them
# (Zen, SkylakeX, Cooperlake kernels) and is faster on the stack's shapes even with the
# same kernels. Its 64-bit-integer interface has no symbol suffix (sgemm_, not Julia's
# sgemm_64_), so it is opened privately (RTLD_LOCAL | RTLD_DEEPBIND: it binds its own
# symbols, Julia's library keeps its own) and called through its handle. Without it,
# LinearAlgebra's BLAS is used, and run_stack.jl picks that library's kernels.
# Float64 (the tests' finite differences) always goes through LinearAlgebra.
# Twins: none

using Libdl

"Where Debian puts its 64-bit-integer OpenBLAS (pthread build first); DLROSETTA_OPENBLAS overrides."
openblas_candidates() =
    haskey(ENV, "DLROSETTA_OPENBLAS") ? [ENV["DLROSETTA_OPENBLAS"]] :
    ["/usr/lib/$(Sys.ARCH)-linux-gnu/openblas64-pthread/libopenblas64.so.0",
     "/usr/lib/$(Sys.ARCH)-linux-gnu/openblas64-openmp/libopenblas64.so.0",
     "/usr/lib/$(Sys.ARCH)-linux-gnu/libopenblas64.so.0"]

"An OpenBLAS opened by this stack: its path and the entry points it uses."
struct OwnBLAS
    path::String
    version::VersionNumber
    sgemm::Ptr{Cvoid}
    set_num_threads::Ptr{Cvoid}
    corename::Ptr{Cvoid}
end

# Filled by __init__ (pointers are per process); `nothing`: LinearAlgebra's BLAS.
const OWN_BLAS = Ref{Union{Nothing,OwnBLAS}}(nothing)

"The OpenBLAS version in a config string (\"OpenBLAS 0.3.21  USE64BITINT DYNAMIC_ARCH ...\")."
function openblas_version(config::AbstractString)
    m = match(r"^OpenBLAS\s+(\d+\.\d+\.\d+)", config)
    return m === nothing ? v"0" : VersionNumber(m[1])
end

function bundled_openblas_config()
    BLAS.vendor() === :openblas64 || return ""
    return unsafe_string(ccall((:openblas_get_config64_, Base.libblas_name), Cstring, ()))
end

"""
Open the first candidate library that is a 64-bit-integer OpenBLAS newer than Julia's
own; `nothing` when there is none (DLROSETTA_OPENBLAS=julia asks for Julia's own).
"""
function open_own_blas(candidates = openblas_candidates())
    bundled = openblas_version(bundled_openblas_config())
    for path in candidates
        (path == "julia" || !isfile(path)) && continue
        handle = Libdl.dlopen(path, Libdl.RTLD_LAZY | Libdl.RTLD_LOCAL | Libdl.RTLD_DEEPBIND; throw_error = false)
        handle === nothing && continue
        symbol(names...) = something((Libdl.dlsym(handle, n; throw_error = false) for n in names)..., C_NULL)
        config_fn = symbol(:openblas_get_config, :openblas_get_config64_)
        sgemm = symbol(:sgemm_, :sgemm_64_)
        (config_fn == C_NULL || sgemm == C_NULL) && continue
        config = unsafe_string(ccall(config_fn, Cstring, ()))
        version = openblas_version(config)
        # The ccalls below pass 64-bit integers; a 32-bit build would misread them.
        (occursin("USE64BITINT", config) && version > bundled) || continue
        return OwnBLAS(path, version, sgemm, symbol(:openblas_set_num_threads, :openblas_set_num_threads64_),
                       symbol(:openblas_get_corename, :openblas_get_corename64_))
    end
    return nothing
end

function __init__()
    OWN_BLAS[] = open_own_blas()
end

"Give the float32 GEMMs `n` threads (and LinearAlgebra's BLAS, which the Float64 paths use)."
function set_blas_threads!(n::Integer)
    BLAS.set_num_threads(n)
    own = OWN_BLAS[]
    own === nothing || own.set_num_threads == C_NULL || ccall(own.set_num_threads, Cvoid, (Cint,), n)
    return n
end

"""
    gemm!(tA, tB, alpha, A, B, beta, C)

`C = alpha op(A) op(B) + beta C` as LinearAlgebra's `BLAS.gemm!`, through the newest
OpenBLAS for Float32 matrices with unit column stride (every call of this stack's).
"""
function gemm!(tA::Char, tB::Char, alpha::Float32, A::StridedMatrix{Float32}, B::StridedMatrix{Float32},
               beta::Float32, C::StridedMatrix{Float32})
    own = OWN_BLAS[]
    (own === nothing || stride(A, 1) != 1 || stride(B, 1) != 1 || stride(C, 1) != 1) &&
        return BLAS.gemm!(tA, tB, alpha, A, B, beta, C)
    m, n = size(C)
    k = tA == 'N' ? size(A, 2) : size(A, 1)
    ((tA == 'N' ? size(A, 1) : size(A, 2)) == m && (tB == 'N' ? size(B, 1) : size(B, 2)) == k &&
     (tB == 'N' ? size(B, 2) : size(B, 1)) == n && tA in ('N', 'T') && tB in ('N', 'T')) ||
        throw(DimensionMismatch("gemm! $tA$tB: A $(size(A)), B $(size(B)), C $(size(C))"))
    ccall(own.sgemm, Cvoid,
          (Ref{UInt8}, Ref{UInt8}, Ref{Int64}, Ref{Int64}, Ref{Int64}, Ref{Float32}, Ptr{Float32}, Ref{Int64},
           Ptr{Float32}, Ref{Int64}, Ref{Float32}, Ptr{Float32}, Ref{Int64}, Clong, Clong),
          tA, tB, m, n, k, alpha, A, max(1, stride(A, 2)), B, max(1, stride(B, 2)), beta, C, max(1, stride(C, 2)),
          1, 1)
    return C
end

gemm!(tA::Char, tB::Char, alpha, A, B, beta, C) = BLAS.gemm!(tA, tB, alpha, A, B, beta, C)

## Which kernels run

"The CPU's flags (/proc/cpuinfo), e.g. avx2, fma, avx512f, avx512_bf16, amx_tile."
function cpu_flags()
    isfile("/proc/cpuinfo") || return Set{String}()
    for line in eachline("/proc/cpuinfo")
        startswith(line, "flags") && return Set{String}(split(split(line, ':'; limit = 2)[end]))
    end
    return Set{String}()
end

"The CPU's model name (/proc/cpuinfo), or the architecture where it does not say."
function cpu_model()
    if isfile("/proc/cpuinfo")
        for line in eachline("/proc/cpuinfo")
            startswith(line, "model name") && return strip(split(line, ':'; limit = 2)[end])
        end
    end
    return string(Sys.ARCH)
end

"The widest vector instruction set the CPU has for float32 FMA: \"AVX-512\", \"AVX2\" or \"pre-AVX2\"."
function cpu_vector_isa(flags = cpu_flags())
    "avx512f" in flags && "fma" in flags && return "AVX-512"
    "avx2" in flags && "fma" in flags && return "AVX2"
    return "pre-AVX2"
end

# OpenBLAS core types whose sgemm kernels use AVX2 and FMA, or wider.
const AVX2_CORES = ("haswell", "zen", "skylakex", "cooperlake", "sapphirerapids")

"The core type (kernel set) the float32 GEMMs run, as that OpenBLAS names it."
function blas_corename()
    own = OWN_BLAS[]
    own !== nothing && own.corename != C_NULL && return unsafe_string(ccall(own.corename, Cstring, ()))
    BLAS.vendor() === :openblas64 || return string(BLAS.vendor())
    return unsafe_string(ccall((:openblas_get_corename64_, Base.libblas_name), Cstring, ()))
end

"""
Whether the OpenBLAS in use failed to recognise this CPU: it picked pre-AVX2 kernels on a
CPU with AVX2 and FMA. run_stack.jl then runs the stack again with OPENBLAS_CORETYPE,
which OpenBLAS reads only while loading.
"""
blas_needs_coretype(flags = cpu_flags()) =
    !haskey(ENV, "OPENBLAS_CORETYPE") && cpu_vector_isa(flags) != "pre-AVX2" &&
    (OWN_BLAS[] !== nothing || BLAS.vendor() === :openblas64) && !(lowercase(blas_corename()) in AVX2_CORES)

"The library and kernels of the float32 GEMMs, for the framework version and kernel notes."
function blas_description()
    own = OWN_BLAS[]
    own !== nothing && return "OpenBLAS $(own.version) ($(blas_corename()) kernels, $(basename(own.path)) " *
                              "from $(dirname(own.path)))"
    BLAS.vendor() === :openblas64 || return string(BLAS.vendor())
    return "OpenBLAS $(openblas_version(bundled_openblas_config())) ($(blas_corename()) kernels, Julia's own)"
end

"The CPU and its vector instruction set, for the kernel notes."
cpu_description(flags = cpu_flags()) = "$(cpu_model()), $(cpu_vector_isa(flags))"
