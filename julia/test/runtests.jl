# Tests of the julia-native stack:
#   julia --project=julia --startup-file=no julia/test/runtests.jl
# Every layer's gradient against central differences in Float64, forward passes against
# direct definitions, the readers (JSON, npy, bundles), parameter counts against
# docs/models.md, training progress, and whole runs of the entry point's code path.
# Cross-language agreement (first losses vs NumPy and PyTorch) is tests/test_julia_stack.py.
# Twins: python tests in tests/, r/tests/.

using Test, Random, SHA
using DLRosetta
const D = DLRosetta

## Fixtures

"Write `a` (column-major) as a C-order .npy 1.0 file of the reversed shape, as NumPy would."
function write_npy(path::AbstractString, a::Array{T}) where {T}
    shape = reverse(size(a))
    dims = length(shape) == 1 ? "($(shape[1]),)" : "(" * join(shape, ", ") * ")"
    header = "{'descr': '$(D.npy_descr(T))', 'fortran_order': False, 'shape': $dims, }"
    header *= " "^mod(-(10 + length(header) + 1), 64) * "\n"
    open(path, "w") do io
        write(io, D.NPY_MAGIC, UInt8[1, 0], htol(UInt16(length(header))), header, a)
    end
    return path
end

"Write an npy bundle (docs/shards.md) of `arrays` (name => array pairs); returns the manifest path."
function write_bundle(dir::AbstractString, kind::AbstractString, arrays, meta = Dict{String,Any}())
    mkpath(dir)
    entries = map(arrays) do (name, a)
        file = write_npy(joinpath(dir, "$name.npy"), a)
        (name = name, file = "$name.npy", dtype = eltype(a) == Float32 ? "float32" : "int32",
         shape = collect(reverse(size(a))), sha256 = D.sha256_file(file))
    end
    return D.write_json_atomic(joinpath(dir, "manifest.json"),
                               (format = "dlrosetta.$kind", format_version = 1, arrays = entries, meta = meta))
end

"Central differences of `loss()` w.r.t. entries `idx` of `p` (restored afterwards)."
function numeric_grad(loss, p::AbstractArray{Float64}, idx; h = 1e-6)
    return map(idx) do i
        old = p[i]
        p[i] = old + h
        up = loss()
        p[i] = old - h
        down = loss()
        p[i] = old
        (up - down) / 2h
    end
end

"Compare an analytic gradient with central differences at up to `k` random entries."
function check_grad(loss, p::AbstractArray{Float64}, analytic::AbstractArray{Float64};
                    k = 16, rng = MersenneTwister(7), rtol = 1e-5)
    idx = length(p) <= k ? collect(eachindex(p)) : rand(rng, eachindex(p), k)
    expected = analytic[idx]   # read before the perturbations overwrite the layer's buffers
    numeric = numeric_grad(loss, p, idx)
    ok = isapprox(expected, numeric; rtol = rtol, atol = 1e-9)
    ok || @info "gradient mismatch" expected numeric
    return ok
end

const TMP = mktempdir()

## Readers

@testset "json" begin
    text = """{"a": [1, 2.5, -3e2, true, false, null], "s": "q\\"\\\\\\/\\n\\u00e9\\ud83d\\ude00",
               "nested": {"x": {}, "y": []}, "n": NaN, "i": -Infinity}"""
    v = D.parse_json(text)
    @test v["a"] == Any[1, 2.5, -300.0, true, false, nothing]
    @test v["a"][1] isa Int && v["a"][3] isa Float64
    @test v["s"] == "q\"\\/\né😀"
    @test v["nested"] == Dict("x" => Dict{String,Any}(), "y" => Any[])
    @test isnan(v["n"]) && v["i"] == -Inf
    round_trip = D.parse_json(D.json_string(v))
    @test round_trip["s"] == v["s"] && round_trip["a"] == v["a"] && isnan(round_trip["n"])
    @test D.json_string((b = 1, a = [1.5f0])) == "{\n  \"b\": 1,\n  \"a\": [\n    1.5\n  ]\n}"
    @test D.json_string("\u01\t") == "\"\\u0001\\t\""
    for bad in ("{", "[1,]", "{\"a\" 1}", "01", "\"abc", "[1] x", "tru", "\"\\x\"")
        @test_throws D.JSONError D.parse_json(bad)
    end
end

@testset "npy" begin
    for a in (rand(Float32, 3, 4, 5, 2), Int32.(reshape(0:11, 4, 3)), Int32[7, -8], fill(1.5f0))
        path = write_npy(joinpath(TMP, "a.npy"), a)
        b = D.read_npy(path)
        @test typeof(b) == typeof(a) && b == a
    end
    good = read(joinpath(TMP, "a.npy"))
    bad(bytes) = (p = joinpath(TMP, "bad.npy"); write(p, bytes); p)
    @test_throws D.BundleError D.read_npy(bad(vcat(UInt8[0], good[2:end])))            # magic
    @test_throws D.BundleError D.read_npy(bad(good[1:end-1]))                          # truncated
    @test_throws D.BundleError D.read_npy(bad(replace(String(copy(good)), "<f4" => "<f8")))
    @test_throws D.BundleError D.read_npy(bad(replace(String(copy(good)), "False" => "True ")))
    err = try D.read_npy(bad(good[1:end-1])) catch e; e end
    @test occursin("bad.npy", err.msg)
    @test_throws D.BundleError D.read_npy(joinpath(TMP, "missing.npy"))
end

@testset "bundles and shards" begin
    x = rand(Float32, 3, 8, 8, 6)
    y = Int32[0, 1, 2, 0, 1, 2]
    dir = joinpath(TMP, "shards")
    manifest = write_bundle(dir, "shards", ["x_train" => x, "y_train" => y, "x_test" => x[:, :, :, 1:2],
                                            "y_test" => y[1:2]], Dict("num_classes" => 3))
    s = D.read_shards(manifest)
    @test s.x_train == x && s.y_train == y && s.x_test == x[:, :, :, 1:2] && s.meta["num_classes"] == 3
    @test s.manifest_sha256 == bytes2hex(sha256(read(manifest)))
    @test_throws D.BundleError D.read_bundle(manifest, "weights")
    @test_throws D.BundleError D.read_bundle(manifest, "shards"; names = ["nope"])

    # A changed byte fails the checksum, naming the file.
    path = joinpath(dir, "y_test.npy")
    bytes = read(path)
    bytes[end] ⊻= 0x01
    write(path, bytes)
    err = try D.read_shards(manifest) catch e; e end
    @test err isa D.BundleError && occursin("checksum mismatch", err.msg) && occursin(path, err.msg)
    @test D.read_shards(manifest; verify = false).y_test != y[1:2]
    rm(path)
    err = try D.read_shards(manifest) catch e; e end
    @test err isa D.BundleError && occursin(path, err.msg)

    # A manifest whose shape disagrees with the file.
    m = D.read_json(manifest)
    m["arrays"][1]["shape"] = [6, 8, 8, 4]
    m["arrays"][1]["sha256"] = D.sha256_file(joinpath(dir, "x_train.npy"))
    D.write_json_atomic(manifest, m)
    err = try D.read_bundle(manifest, "shards"; names = ["x_train"]) catch e; e end
    @test err isa D.BundleError && occursin("x_train.npy", err.msg)
end

@testset "run spec" begin
    base = Dict{String,Any}("stack" => "julia-native", "model" => "lstm", "dataset" => "d",
                            "model_config" => Dict{String,Any}(), "training" => Dict{String,Any}(),
                            "shards" => "s", "order" => "o", "initial_weights" => nothing, "init_seed" => 1,
                            "threads" => 2, "seed" => 3, "device" => "cpu", "record" => "r")
    write_spec(d) = D.write_json_atomic(joinpath(TMP, "spec.json"), d)
    spec = D.read_runspec(write_spec(base))
    @test spec.threads == 2 && spec.initial_weights === nothing && spec.check === nothing
    for (key, value) in (("extra", 1), ("check", "other"), ("device", "tpu"), ("threads", "2"), ("spec_version", 2))
        @test_throws D.RunSpecError D.read_runspec(write_spec(merge(base, Dict{String,Any}(key => value))))
    end
    @test_throws D.RunSpecError D.read_runspec(write_spec(delete!(copy(base), "record")))
end

## Model definitions

"docs/models.md: 27w + 2w + sum over blocks (9 cin c + 9 c c + 4c) + 4w K + K (+ cin c + 2c for B)."
function resnet_formula(depth, w, shortcut, K)
    n, total, cin = (depth - 2) ÷ 6, 27w + 2w, w
    for stage in 1:3, block in 1:n
        c = w * 2^(stage - 1)
        total += 9cin * c + 9c * c + 4c
        shortcut == "B" && stage > 1 && block == 1 && (total += cin * c + 2c)
        cin = c
    end
    return total + 4w * K + K
end

@testset "parameter counts" begin
    for (depth, shortcut, expected) in ((8, "A", 75290), (20, "A", 269722), (20, "B", 272474))
        specs = resnet_spec(ResNetConfig(depth = depth, width = 16, shortcut = shortcut, num_classes = 10))
        @test D.parameter_count(specs) == expected == resnet_formula(depth, 16, shortcut, 10)
    end
    V, E, H = 30000, 125, 100
    specs = lstm_spec(LSTMConfig(vocab_size = V, embedding_dim = E, units = H, maxlen = 150))
    @test D.parameter_count(specs) == 3840602 == V * E + 4 * (E * H + H * H + H) + 2H + 2
    m = ResNet{Float32}(ResNetConfig(depth = 8, width = 16), 2)
    @test D.parameter_count(m.params) == 75290
    @test sum(length(m.params.arrays[p.name]) for p in m.params.specs if p.trainable) == 75290
end

@testset "initial weights" begin
    cfg = LSTMConfig(vocab_size = 50, embedding_dim = 4, units = 3, maxlen = 5)
    specs = lstm_spec(cfg)
    w = D.draw_weights(specs, 1)
    @test size(w["lstm.kernel"]) == (12, 4) && size(w["embedding.embeddings"]) == (4, 50)
    @test w["lstm.bias"] == Float32[0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    @test maximum(abs, w["lstm.recurrent_kernel"]) <= 1 / sqrt(3) && maximum(abs, w["embedding.embeddings"]) <= 0.05
    @test w == D.draw_weights(specs, 1) && w != D.draw_weights(specs, 2)
    manifest = write_bundle(joinpath(TMP, "weights"), "weights", [p.name => w[p.name] for p in specs])
    m = LSTMNet{Float32}(cfg, 2)
    D.load_weights!(m.params, D.read_initial_weights(manifest, specs))
    @test m.wx == w["lstm.kernel"] && m.params.arrays["head.dense.bias"] == w["head.dense.bias"]
    other = lstm_spec(LSTMConfig(vocab_size = 51, embedding_dim = 4, units = 3, maxlen = 5))
    err = try D.read_initial_weights(manifest, other) catch e; e end
    @test err isa D.BundleError && occursin("embedding.embeddings", err.msg)
end

## Layers: forward against definitions, backward against central differences (Float64)

@testset "conv" begin
    rng = MersenneTwister(1)
    for (k, stride, W, H, chunk) in ((3, 1, 5, 6, 1), (3, 2, 6, 5, 2), (1, 2, 6, 6, 2), (3, 1, 4, 4, 0))
        cin, cout, n = 3, 4, 3
        w = randn(rng, cout, cin, k, k)
        dw = zeros(size(w))
        c = D.Conv(w, dw, W, H; batch = n, stride = stride, chunk = chunk)
        x = randn(rng, cin, W, H, n)
        y = zeros(cout, c.out_w, c.out_h, n)
        D.conv_forward!(y, c, x, n)
        p = (k - 1) ÷ 2
        direct = [sum(w[co, ci, kx, ky] * x[ci, (ox - 1) * stride - p + kx, (oy - 1) * stride - p + ky, i]
                      for ci in 1:cin, kx in 1:k, ky in 1:k
                      if 1 <= (ox - 1) * stride - p + kx <= W && 1 <= (oy - 1) * stride - p + ky <= H)
                  for co in 1:cout, ox in 1:c.out_w, oy in 1:c.out_h, i in 1:n]
        @test size(y) == (cout, cld(W, stride), cld(H, stride), n) && y ≈ direct

        R = randn(rng, size(y))
        loss() = (D.conv_forward!(y, c, x, n); sum(R .* y))
        dx = zeros(size(x))
        D.conv_backward!(dx, c, x, R, n)
        @test check_grad(loss, x, dx)
        @test check_grad(loss, w, copy(dw))
        acc = ones(size(x))
        D.conv_backward!(acc, c, x, R, n; accumulate = true)
        @test acc ≈ dx .+ 1
    end
end

@testset "batch norm (+ residual, + relu)" begin
    rng = MersenneTwister(2)
    C, W, H, n = 3, 4, 5, 2
    for relu in (true, false), with_residual in (false, true)
        gamma, beta = 1 .+ 0.1 .* randn(rng, C), 0.1 .* randn(rng, C)
        dgamma, dbeta = zeros(C), zeros(C)
        mm, mv = zeros(C), ones(C)
        bn = D.BatchNorm(gamma, beta, dgamma, dbeta, mm, mv; relu = relu, batch = n)
        x = 2 .+ randn(rng, C, W, H, n)
        residual = with_residual ? randn(rng, C, W, H, n) : nothing
        y = zeros(C, W, H, n)
        D.batchnorm_forward!(y, bn, x, n, true; residual = residual)
        mu = vec(sum(x; dims = (2, 3, 4))) ./ (W * H * n)
        var = vec(sum((x .- mu) .^ 2; dims = (2, 3, 4))) ./ (W * H * n)
        pre = gamma .* (x .- mu) ./ sqrt.(var .+ 1e-5) .+ beta .+ something(residual, 0)
        @test y ≈ (relu ? max.(pre, 0) : pre)
        @test mm ≈ 0.1 .* mu && mv ≈ 0.9 .+ 0.1 .* var

        R = randn(rng, C, W, H, n)
        loss() = (D.batchnorm_forward!(y, bn, x, n, true; residual = residual); sum(R .* y))
        dy, dx = copy(R), zeros(C, W, H, n)
        D.batchnorm_backward!(dx, bn, x, y, dy, n)
        @test check_grad(loss, x, dx)
        @test check_grad(loss, gamma, copy(dgamma))
        @test check_grad(loss, beta, copy(dbeta))
        with_residual && @test check_grad(loss, residual, dy)   # dy now holds the residual's gradient

        # Inference uses the moving statistics.
        D.batchnorm_forward!(y, bn, x, n, false; residual = residual)
        pre = gamma .* (x .- mm) ./ sqrt.(mv .+ 1e-5) .+ beta .+ something(residual, 0)
        @test y ≈ (relu ? max.(pre, 0) : pre)
    end
end

@testset "pooling, dense, softmax cross-entropy, embedding" begin
    rng = MersenneTwister(3)
    x = randn(rng, 4, 3, 2, 5)
    pooled = zeros(4, 5)
    D.avgpool_forward!(pooled, x, 5)
    @test pooled ≈ dropdims(sum(x; dims = (2, 3)); dims = (2, 3)) ./ 6
    R = randn(rng, 4, 5)
    dx = similar(x)
    D.avgpool_backward!(dx, R, 5)
    @test check_grad(() -> (D.avgpool_forward!(pooled, x, 5); sum(R .* pooled)), x, dx)

    w, b = randn(rng, 3, 4), randn(rng, 3)
    d = D.Dense{Float64}(w, b, zeros(3, 4), zeros(3))
    xin, y = randn(rng, 4, 5), zeros(3, 5)
    D.dense_forward!(y, d, xin, 5)
    @test y ≈ w * xin .+ b
    R = randn(rng, 3, 5)
    dxin = zeros(4, 5)
    D.dense_backward!(dxin, d, xin, R, 5)
    dense_loss() = (D.dense_forward!(y, d, xin, 5); sum(R .* y))
    @test check_grad(dense_loss, xin, dxin) && check_grad(dense_loss, w, copy(d.dw)) &&
          check_grad(dense_loss, b, copy(d.db))

    logits, labels = randn(rng, 3, 5), Int32[0, 2, 1, 1, 0]
    dlogits = zeros(3, 5)
    l = D.softmax_xent!(dlogits, logits, labels, 5)
    @test l ≈ sum(log(sum(exp.(logits[:, i]))) - logits[labels[i] + 1, i] for i in 1:5) / 5
    @test check_grad(() -> D.softmax_xent!(zeros(3, 5), logits, labels, 5), logits, copy(dlogits))
    @test D.count_correct([0.1 0.9; 0.8 0.2], Int32[1, 1], 2) == 1

    emb, tokens = randn(rng, 4, 6), Int32[0, 5, 2, 5]
    out = zeros(4, 4)
    D.embedding_forward!(out, emb, tokens)
    @test out == emb[:, tokens .+ 1]
    R = randn(rng, 4, 4)
    demb = zeros(4, 6)
    D.embedding_backward!(demb, R, tokens)
    @test check_grad(() -> (D.embedding_forward!(out, emb, tokens); sum(R .* out)), emb, demb)
end

@testset "shortcut A" begin
    rng = MersenneTwister(4)
    a = randn(rng, 4, 6, 6, 2)
    s = D.PadShortcut{Float64}(zeros(8, 3, 3, 2), 2)
    out = D.shortcut_forward!(s, a, 2, true)
    @test out[3:6, :, :, :] == a[:, 1:2:end, 1:2:end, :]
    @test all(iszero, out[1:2, :, :, :]) && all(iszero, out[7:8, :, :, :])
    R = randn(rng, 8, 3, 3, 2)
    da = zeros(size(a))
    D.shortcut_backward!(s, da, a, R, 2)
    @test check_grad(() -> sum(R .* D.shortcut_forward!(s, a, 2, true)), a, da)
end

@testset "fast Float32 activations" begin
    xs = Float32.(range(-100, 100; length = 400_001))
    exact_exp(x) = exp(Float64(x))
    @test maximum(x -> abs(D.exp_fast(x) / exact_exp(x) - 1), filter(x -> -87 <= x <= 88, xs)) < 2 * eps(Float32)
    @test maximum(x -> abs(D.sigmoid(x) - 1 / (1 + exact_exp(-x))), xs) < 2e-7
    @test maximum(x -> abs(D.tanh_fast(x) - tanh(Float64(x))), xs) < 3e-7
    @test D.sigmoid(0.3) == 1 / (1 + exp(-0.3)) && D.tanh_fast(0.3) == tanh(0.3)   # Float64: Base
end

## Whole models (Float64): every tensor's gradient through the full network

"Loss of the model on its current batch, training mode."
model_loss(m) = D.softmax_xent!(m.dlogits, predict!(m, m.batch, true), m.labels, m.batch)

"Gradient check of `m` on batch (x, y) at a few entries of every trainable tensor."
function check_model_grads(m, x, y)
    gather!(m, x, y, 0:m.batch - 1)
    model_loss(m)
    backward!(m, m.batch)
    grads = Dict(k => copy(v) for (k, v) in m.params.grads)
    bad = [p.name for p in m.params.specs if p.trainable &&
           !check_grad(() -> model_loss(m), m.params.arrays[p.name], grads[p.name]; k = 3)]
    isempty(bad) || @info "gradient mismatch" bad
    return isempty(bad), grads
end

function small_resnet(shortcut; batch = 4)
    cfg = ResNetConfig(depth = 8, width = 4, shortcut = shortcut, num_classes = 3, image_size = 8)
    m = ResNet{Float64}(cfg, batch)
    D.load_weights!(m.params, D.draw_weights(resnet_spec(cfg), 5))
    rng = MersenneTwister(6)
    for p in m.params.specs   # BN gammas away from their initial ones
        p.trainable && p.init === :ones && (m.params.arrays[p.name] .+= 0.2 .* randn(rng, size(m.params.arrays[p.name])))
    end
    return m
end

function small_lstm(; batch = 3)
    cfg = LSTMConfig(vocab_size = 7, embedding_dim = 3, units = 4, maxlen = 5, num_classes = 2)
    m = LSTMNet{Float64}(cfg, batch)
    D.load_weights!(m.params, D.draw_weights(lstm_spec(cfg), 5))
    m.params.arrays["lstm.bias"] .+= 0.3 .* randn(MersenneTwister(6), 16)
    return m
end

@testset "shapes" begin
    cfg = ResNetConfig(depth = 14, width = 8, shortcut = "B", num_classes = 5)
    m = ResNet{Float32}(cfg, 6)
    @test length(m.blocks) == 6 && size(m.stem_y) == (8, 32, 32, 6)
    @test [size(b.y) for b in m.blocks[[1, 3, 5]]] == [(8, 32, 32, 6), (16, 16, 16, 6), (32, 8, 8, 6)]
    @test m.blocks[3].shortcut isa D.ProjectionShortcut && m.blocks[4].shortcut isa D.IdentityShortcut
    D.load_weights!(m.params, D.draw_weights(resnet_spec(cfg), 1))
    gather!(m, rand(Float32, 3, 32, 32, 9), Int32.(0:8) .% Int32(5), [8, 0, 3])
    @test size(predict!(m, 3, false)) == (5, 6) && m.labels[1:3] == [3, 0, 3]
    lm = LSTMNet{Float32}(LSTMConfig(vocab_size = 9, embedding_dim = 3, units = 4, maxlen = 7), 5)
    @test size(lm.wx) == (16, 3) && size(lm.wh) == (16, 4) && size(lm.emb) == (3, 9) && size(lm.dense.w) == (2, 4)
end

@testset "model gradients" begin
    rng = MersenneTwister(8)
    x, y = rand(rng, Float32, 3, 8, 8, 4), Int32[0, 1, 2, 1]
    tokens, labels = Int32.(rand(rng, 0:6, 5, 3)), Int32[0, 1, 1]
    for shortcut in ("A", "B")
        ok, _ = check_model_grads(small_resnet(shortcut), x, y)
        @test ok
    end
    ok, _ = check_model_grads(small_lstm(), tokens, labels)
    @test ok

    # Models built for two workers (per-worker scratch, LSTM batch slices) get the same
    # gradients as with one: the ResNet's bit for bit (work is summed per item, in item
    # order), the LSTM's up to rounding (two slices). With JULIA_NUM_THREADS >= 2 the
    # workers also run concurrently.
    one_worker = [check_model_grads(small_resnet("B"), x, y)[2], check_model_grads(small_lstm(), tokens, labels)[2]]
    D.WORKERS[] = 2
    try
        (ok_resnet, resnet2), (ok_lstm, lstm2) = check_model_grads(small_resnet("B"), x, y),
                                                 check_model_grads(small_lstm(), tokens, labels)
        @test ok_resnet && ok_lstm
        @test all(one_worker[1][k] == resnet2[k] for k in keys(resnet2))
        @test all(one_worker[2][k] ≈ lstm2[k] for k in keys(lstm2))
    finally
        D.WORKERS[] = 1
    end
end

## Training (Float32)

@testset "loss falls on a small batch" begin
    rng = MersenneTwister(9)
    cfg = ResNetConfig(depth = 8, width = 8, num_classes = 4, image_size = 16)
    m = ResNet{Float32}(cfg, 16)
    D.load_weights!(m.params, D.draw_weights(resnet_spec(cfg), 1))
    opt = SGD(D.parameter_count(m.params), Float32; lr = 0.05, momentum = 0.9)
    x, y = rand(rng, Float32, 3, 16, 16, 16), Int32.(rand(rng, 0:3, 16))
    losses = [train_step!(m, opt, x, y, 0:15) for _ in 1:8]
    @test all(isfinite, losses) && losses[end] < 0.7 * losses[1]

    lcfg = LSTMConfig(vocab_size = 30, embedding_dim = 8, units = 8, maxlen = 6)
    lm = LSTMNet{Float32}(lcfg, 16)
    D.load_weights!(lm.params, D.draw_weights(lstm_spec(lcfg), 1))
    opt = Adam(D.parameter_count(lm.params), Float32; lr = 0.02, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8)
    tokens, labels = Int32.(rand(rng, 0:29, 6, 16)), Int32.(rand(rng, 0:1, 16))
    losses = [train_step!(lm, opt, tokens, labels, 0:15) for _ in 1:8]
    @test all(isfinite, losses) && losses[end] < 0.7 * losses[1]
end

@testset "optimisers" begin
    w, g = Float64[1, 2], Float64[0.5, -1]
    sgd = SGD(2, Float64; lr = 0.1, momentum = 0.9)
    D.update!(sgd, w, g)
    D.update!(sgd, w, g)
    @test w ≈ [1, 2] .- 0.1 .* g .- 0.1 .* (0.9 .* g .+ g)
    w = Float64[1, 2]
    adam = Adam(2, Float64; lr = 0.1, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8)
    D.update!(adam, w, g)
    # Step 1: m = 0.1g, v = 0.001g²; epsilon sits on the uncorrected sqrt(v) (docs/models.md).
    @test w ≈ [1, 2] .- 0.1 .* g ./ (abs.(g) .+ 1e-8 / sqrt(1 - 0.999))
end

## The entry point's code path: check mode and a full run writing the record

const RECORD_FIELDS = ["schema_version", "status", "reason", "stack", "language", "framework", "backend",
    "model", "dataset", "hyperparameters", "threads", "seed", "device", "host", "created_at",
    "language_version", "framework_version", "shards_sha256", "initial_weights_sha256", "parameter_count",
    "train_samples_per_epoch", "epoch_seconds", "warmup_epoch_seconds", "steady_epoch_seconds",
    "steady_samples_per_second", "train_loss_per_epoch", "final_train_loss", "test_accuracy", "eval_seconds",
    "startup_seconds", "peak_rss_mb", "fused_kernel", "kernel_notes", "run_seconds"]

@testset "run_stack" begin
    rng = MersenneTwister(10)
    L, N = 6, 40
    tokens = Int32.(rand(rng, 0:19, L, N))
    labels = Int32.(rand(rng, 0:1, N))
    shards = write_bundle(joinpath(TMP, "run", "shards"), "shards",
                          ["x_train" => tokens, "y_train" => labels, "x_test" => tokens[:, 1:10], "y_test" => labels[1:10]])
    order = write_npy(joinpath(TMP, "run", "order.npy"), hcat([Int32.(randperm(rng, N) .- 1) for _ in 1:2]...))
    config = Dict{String,Any}("vocab_size" => 20, "embedding_dim" => 4, "units" => 5, "maxlen" => L, "num_classes" => 2)
    weights = D.draw_weights(lstm_spec(LSTMConfig(config)), 3)
    wmanifest = write_bundle(joinpath(TMP, "run", "weights"), "weights",
                             [p.name => weights[p.name] for p in lstm_spec(LSTMConfig(config))])
    spec = Dict{String,Any}("stack" => "julia-native", "model" => "lstm", "dataset" => "tiny",
        "model_config" => config,
        "training" => Dict{String,Any}("epochs" => 2, "batch_size" => 16, "optimizer" => Dict{String,Any}(
            "name" => "adam", "learning_rate" => 0.001, "beta_1" => 0.9, "beta_2" => 0.999, "epsilon" => 1e-8)),
        "shards" => shards, "order" => order, "initial_weights" => wmanifest, "init_seed" => 1, "threads" => 1,
        "seed" => 1, "device" => "cpu", "record" => joinpath(TMP, "run", "record.json"))
    run(spec) = D.main([D.write_json_atomic(joinpath(TMP, "run", "spec.json"), spec)])

    @test run(merge(spec, Dict{String,Any}("check" => "step_losses", "check_steps" => 3))) == 0
    check = D.read_json(spec["record"])
    @test check["check"] == "step_losses" && length(check["losses"]) == 2   # 40 samples: 2 full batches
    @test check["parameter_count"] == 20 * 4 + 4 * (4 * 5 + 5 * 5 + 5) + 2 * 5 + 2

    @test run(spec) == 0
    r = D.read_json(spec["record"])
    @test sort(collect(keys(r))) == sort(RECORD_FIELDS)
    @test r["status"] == "ok" && r["reason"] === nothing && r["language"] == "julia"
    @test r["framework"] == "julia-native" && r["schema_version"] == "1.0.0" && r["backend"] === nothing
    @test r["train_samples_per_epoch"] == 32 && length(r["epoch_seconds"]) == 2
    @test r["final_train_loss"] == r["train_loss_per_epoch"][end]
    @test r["train_loss_per_epoch"][1] ≈ sum(check["losses"]) / 2   # same batches, same weights
    @test 0 <= r["test_accuracy"] <= 1 && r["peak_rss_mb"] > 0 && r["startup_seconds"] > 0
    @test r["shards_sha256"] == D.sha256_file(shards) && r["initial_weights_sha256"] == D.sha256_file(wmanifest)
    @test r["hyperparameters"]["model"] == config

    @test run(merge(spec, Dict{String,Any}("initial_weights" => nothing))) == 0
    @test D.read_json(spec["record"])["initial_weights_sha256"] === nothing

    # Bad input ends with a message and exit code 1 (the launcher records it as failed).
    @test run(merge(spec, Dict{String,Any}("shards" => joinpath(TMP, "nowhere.json")))) == 1
    @test run(merge(spec, Dict{String,Any}("model_config" => merge(config, Dict{String,Any}("vocab_size" => 10))))) == 1
    @test run(merge(spec, Dict{String,Any}("device" => "gpu"))) == 1
end
