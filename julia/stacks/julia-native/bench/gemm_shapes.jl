# GEMM rate of the library julia-native uses, at the stack's own shapes: every conv of the
# default ResNet (per cache-sized chunk of images: forward, weight gradient (NT), column
# gradient (TN)) and the LSTM's per-slice GEMMs, single-threaded as each of two workers
# calls them at threads = 2. Compare libraries and kernels with, e.g.:
#   julia --project=julia/stacks/julia-native --startup-file=no julia/stacks/julia-native/bench/gemm_shapes.jl
#   DLROSETTA_OPENBLAS=julia OPENBLAS_CORETYPE=Haswell julia ... (Julia's own OpenBLAS)
#   OPENBLAS_CORETYPE=Haswell julia ...                           (the newest one, other kernels)
# Twins: none

using DLRosetta, JuliaNative, Statistics
const J = JuliaNative

J.set_threads!(1)
shapes = Tuple{String,Char,Char,Int,Int,Int}[]   # (label, tA, tB, M, N, K)
resnet = J.build_model(ResNetConfig(depth = 8, width = 16), 128)
convs = [resnet.stem_conv; [c for b in resnet.blocks for c in (b.conv1, b.conv2)]]
for c in unique(c -> (c.cin, c.cout, c.stride, c.out_w), convs)
    rows, cols = size(c.w, 2), c.chunk * c.out_w * c.out_h
    label = "conv $(c.cin)->$(c.cout) s$(c.stride) $(c.out_w)x$(c.out_h)"
    push!(shapes, ("$label fwd", 'N', 'N', c.cout, cols, rows), ("$label dW", 'N', 'T', c.cout, rows, cols),
          ("$label dcol", 'T', 'N', rows, cols, c.cout))
end
E, H, L, slice = 125, 100, 80, 32   # default LSTM, batch 64 in two slices
push!(shapes, ("lstm input", 'N', 'N', 4H, L * slice, E), ("lstm recurrent", 'N', 'N', 4H, slice, H),
      ("lstm dh", 'T', 'N', H, slice, 4H), ("lstm dWh", 'N', 'T', 4H, H, (L - 1) * slice),
      ("lstm dWx", 'N', 'T', 4H, E, L * slice), ("lstm dxe", 'T', 'N', E, L * slice, 4H))

println("# ", J.blas_description(), " on ", J.cpu_description())
for (label, tA, tB, M, N, K) in shapes
    A = tA == 'N' ? randn(Float32, M, K) : randn(Float32, K, M)
    B = tB == 'N' ? randn(Float32, K, N) : randn(Float32, N, K)
    C = zeros(Float32, M, N)
    J.gemm!(tA, tB, 1.0f0, A, B, 0.0f0, C)
    flops = 2.0 * M * N * K
    reps = max(1, round(Int, 2e8 / flops))
    seconds = map(1:15) do _
        t = time_ns()
        for _ in 1:reps
            J.gemm!(tA, tB, 1.0f0, A, B, 0.0f0, C)
        end
        (time_ns() - t) / 1e9 / reps
    end
    println(rpad("$label ($M x $K * $K x $N, $tA$tB)", 56), lpad(round(flops / median(seconds) / 1e9; digits = 1), 7),
            " GF/s median, ", lpad(round(flops / minimum(seconds) / 1e9; digits = 1), 7), " best")
end
