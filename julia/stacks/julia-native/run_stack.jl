# Entry point of the julia-native stack (stack.yaml; docs/stack-contract.md):
#   julia --project=julia/stacks/julia-native --startup-file=no julia/stacks/julia-native/run_stack.jl RUN_SPEC.json
#
# Debian's Julia 1.5.3 ships OpenBLAS 0.3.9, which predates Zen 3/4 and falls back to its
# SSE-era kernels there ("Barcelona"), at well under half the speed. OpenBLAS reads
# OPENBLAS_CORETYPE only while loading, so on a CPU with AVX2 and FMA the script runs
# itself once more with the Haswell kernels, which every such CPU executes.
# Twins: python/dlrosetta/stacks/pytorch/__main__.py, r/stacks/r-keras/run_stack.R

using LinearAlgebra

const AVX2_CORES = ("haswell", "zen", "skylakex", "cooperlake", "sapphirerapids")
const REEXEC_VARIABLE = "DLROSETTA_JULIA_PARENT"

function cpu_flags()
    isfile("/proc/cpuinfo") || return String[]
    lines = readlines("/proc/cpuinfo")
    k = findfirst(line -> startswith(line, "flags"), lines)
    return k === nothing ? String[] : split(lines[k])
end

function blas_needs_coretype()
    (haskey(ENV, "OPENBLAS_CORETYPE") || BLAS.vendor() !== :openblas64) && return false
    core = unsafe_string(ccall((:openblas_get_corename64_, Base.libblas_name), Cstring, ()))
    return !(lowercase(core) in AVX2_CORES) && "avx2" in cpu_flags() && "fma" in cpu_flags()
end

if blas_needs_coretype()
    cmd = `$(Base.julia_cmd()) --project=$(Base.active_project()) $(PROGRAM_FILE) $ARGS`
    env = merge(ENV, Dict("OPENBLAS_CORETYPE" => "Haswell", REEXEC_VARIABLE => string(getpid())))
    child = run(ignorestatus(setenv(cmd, env)))
    exit(child.termsignal != 0 ? 128 + child.termsignal : child.exitcode)  # as a shell reports it
end

using JuliaNative

# After a re-execution, start-up counts from the first process (the one the launcher started).
exit(JuliaNative.main(ARGS; startup_pid = parse(Int, get(ENV, REEXEC_VARIABLE, string(getpid())))))
