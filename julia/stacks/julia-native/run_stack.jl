# Entry point of the julia-native stack (stack.yaml; docs/stack-contract.md):
#   julia --project=julia/stacks/julia-native --startup-file=no julia/stacks/julia-native/run_stack.jl RUN_SPEC.json
#
# The float32 GEMMs run on the newest OpenBLAS found (src/blas.jl): Debian's 0.3.21 when
# installed, which recognises current AMD and Intel CPUs by itself. Only when the library
# in use does not know the CPU (Julia 1.5's own OpenBLAS 0.3.9 falls back to its SSE-era
# "Barcelona" kernels on Zen 3/4) and the CPU has AVX2 and FMA does the script run itself
# once more with OPENBLAS_CORETYPE=Haswell, which OpenBLAS reads only while loading and
# whose kernels every such CPU executes.
# Twins: python/dlrosetta/stacks/pytorch/__main__.py, r/stacks/r-keras/run_stack.R

const REEXEC_VARIABLE = "DLROSETTA_JULIA_PARENT"

using JuliaNative

if JuliaNative.blas_needs_coretype()
    cmd = `$(Base.julia_cmd()) --project=$(Base.active_project()) $(PROGRAM_FILE) $ARGS`
    env = merge(ENV, Dict("OPENBLAS_CORETYPE" => "Haswell", REEXEC_VARIABLE => string(getpid())))
    child = run(ignorestatus(setenv(cmd, env)))
    exit(child.termsignal != 0 ? 128 + child.termsignal : child.exitcode)  # as a shell reports it
end

# After a re-execution, start-up counts from the first process (the one the launcher started).
exit(JuliaNative.main(ARGS; startup_pid = parse(Int, get(ENV, REEXEC_VARIABLE, string(getpid())))))
