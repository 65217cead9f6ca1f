# Tests of the julia-native stack:
#   julia --project=julia/stacks/julia-native --startup-file=no julia/stacks/julia-native/test/runtests.jl
# Every layer's gradient against central differences in Float64, forward passes against
# direct definitions, whole models' gradients, training progress, canonical weights in and
# out, predict as the evaluation's forward pass, and whole runs of the entry point's code
# path (training keeping its weights, inference mode on them). The shared library's
# readers and writers are tested in julia/test/runtests.jl; cross-language agreement
# (first losses vs NumPy and PyTorch, logits of other stacks' trained weights) in
# tests/test_cross_stack.py, tests/test_julia_stack.py and tests/test_inference_mode.py.
# Twins: tests/test_julia_stack.py

using Test, Random
using DLRosetta, JuliaNative
const J = JuliaNative

include(joinpath(dirname(pathof(DLRosetta)), "..", "test", "fixtures.jl"))

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

"Loss of the model on its current batch, training mode."
model_loss(m) = J.softmax_xent!(m.dlogits, predict!(m, m.batch, true), m.labels, m.batch)

"Gradient check of `m` on batch (x, y) at a few entries of every trainable tensor."
function check_model_grads(m, x, y)
    gather!(m, x, y, 0:m.batch - 1)
    model_loss(m)
    backward!(m, m.batch)
    grads = Dict(k => copy(v) for (k, v) in m.params.grads)
    bad = [p.name for p in m.params.spec.params if p.trainable &&
           !check_grad(() -> model_loss(m), m.params.arrays[p.name], grads[p.name]; k = 3)]
    isempty(bad) || @info "gradient mismatch" bad
    return isempty(bad), grads
end

function small_resnet(shortcut; batch = 4)
    cfg = ResNetConfig(depth = 8, width = 4, shortcut = shortcut, num_classes = 3, image_size = 8)
    m = ResNet{Float64}(cfg, batch)
    load_weights!(m.params, initial_weights(model_spec(cfg), 5))
    rng = MersenneTwister(6)
    for p in m.params.spec.params   # BN gammas away from their initial ones
        p.trainable && p.init === :ones && (m.params.arrays[p.name] .+= 0.2 .* randn(rng, size(m.params.arrays[p.name])))
    end
    return m
end

function small_lstm(; batch = 3)
    cfg = LSTMConfig(vocab_size = 7, embedding_dim = 3, units = 4, maxlen = 5, num_classes = 2)
    m = LSTMNet{Float64}(cfg, batch)
    load_weights!(m.params, initial_weights(model_spec(cfg), 5))
    m.params.arrays["lstm.bias"] .+= 0.3 .* randn(MersenneTwister(6), 16)
    return m
end

const TMP = mktempdir()

@testset "julia-native" begin

    ## Parameters: the model's storage of its spec's tensors

    @testset "parameters" begin
        m = ResNet{Float32}(ResNetConfig(depth = 8, width = 16), 2)
        @test parameter_count(m.params) == 75290 == parameter_count(m.params.spec)
        @test sum(length(m.params.arrays[p.name]) for p in m.params.spec.params if p.trainable) == 75290
        # Trainable tensors are windows onto the flat vector the optimizer updates.
        m.params.flat .= 0
        @test all(iszero, m.params.arrays["stem.conv.kernel"])
        @test !any(p -> p.name == "stem.bn.moving_mean" && p.trainable, m.params.spec.params)

        cfg = LSTMConfig(vocab_size = 50, embedding_dim = 4, units = 3, maxlen = 5)
        spec = model_spec(cfg)
        w = initial_weights(spec, 1)
        lm = LSTMNet{Float32}(cfg, 2)
        load_weights!(lm.params, read_initial_weights(write_weights(joinpath(TMP, "weights"), spec, w), spec))
        @test lm.wx == w["lstm.kernel"] && lm.params.arrays["head.dense.bias"] == w["head.dense.bias"]
        @test lm.params.flat[1:length(lm.emb)] == vec(w["embedding.embeddings"])
    end

    @testset "canonical weights: the inverse of load_weights!" begin
        rng = MersenneTwister(15)
        for cfg in (ResNetConfig(depth = 8, width = 4, shortcut = "B", num_classes = 3, image_size = 8),
                    LSTMConfig(vocab_size = 7, embedding_dim = 3, units = 4, maxlen = 5))
            spec = model_spec(cfg)
            # Every tensor its own numbers, BN moving statistics included.
            w = Dict{String,Array}(p.name => randn(rng, Float32, julia_size(p)) for p in spec.params)
            m = J.build_model(cfg, 2)
            load_weights!(m.params, read_initial_weights(write_weights(joinpath(TMP, "canonical"), spec, w), spec))
            out = canonical_weights(m.params)
            @test out == w && out isa Dict{String,Array{Float32}}
            @test all(size(out[p.name]) == julia_size(p) for p in spec.params)
            # Copies, not the windows the optimizer writes through.
            m.params.flat .= 0
            @test out == w
            # A Float64 model's weights come out as the contract's float32.
            m64 = J.build_model(cfg, 2, Float64)
            load_weights!(m64.params, w)
            @test canonical_weights(m64.params) == w
        end
    end

    ## Layers: forward against definitions, backward against central differences (Float64)

    @testset "conv" begin
        rng = MersenneTwister(1)
        for (k, stride, W, H, chunk) in ((3, 1, 5, 6, 1), (3, 2, 6, 5, 2), (1, 2, 6, 6, 2), (3, 1, 4, 4, 0))
            cin, cout, n = 3, 4, 3
            w = randn(rng, cout, cin, k, k)
            dw = zeros(size(w))
            c = J.Conv(w, dw, W, H; batch = n, stride = stride, chunk = chunk)
            x = randn(rng, cin, W, H, n)
            y = zeros(cout, c.out_w, c.out_h, n)
            J.conv_forward!(y, c, x, n)
            p = (k - 1) ÷ 2
            direct = [sum(w[co, ci, kx, ky] * x[ci, (ox - 1) * stride - p + kx, (oy - 1) * stride - p + ky, i]
                          for ci in 1:cin, kx in 1:k, ky in 1:k
                          if 1 <= (ox - 1) * stride - p + kx <= W && 1 <= (oy - 1) * stride - p + ky <= H)
                      for co in 1:cout, ox in 1:c.out_w, oy in 1:c.out_h, i in 1:n]
            @test size(y) == (cout, cld(W, stride), cld(H, stride), n) && y ≈ direct

            R = randn(rng, size(y))
            loss() = (J.conv_forward!(y, c, x, n); sum(R .* y))
            dx = zeros(size(x))
            J.conv_backward!(dx, c, x, R, n)
            @test check_grad(loss, x, dx)
            @test check_grad(loss, w, copy(dw))
            acc = ones(size(x))
            J.conv_backward!(acc, c, x, R, n; accumulate = true)
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
            bn = J.BatchNorm(gamma, beta, dgamma, dbeta, mm, mv; relu = relu, batch = n)
            x = 2 .+ randn(rng, C, W, H, n)
            residual = with_residual ? randn(rng, C, W, H, n) : nothing
            y = zeros(C, W, H, n)
            J.batchnorm_forward!(y, bn, x, n, true; residual = residual)
            mu = vec(sum(x; dims = (2, 3, 4))) ./ (W * H * n)
            var = vec(sum((x .- mu) .^ 2; dims = (2, 3, 4))) ./ (W * H * n)
            pre = gamma .* (x .- mu) ./ sqrt.(var .+ 1e-5) .+ beta .+ something(residual, 0)
            @test y ≈ (relu ? max.(pre, 0) : pre)
            @test mm ≈ 0.1 .* mu && mv ≈ 0.9 .+ 0.1 .* var

            R = randn(rng, C, W, H, n)
            loss() = (J.batchnorm_forward!(y, bn, x, n, true; residual = residual); sum(R .* y))
            dy, dx = copy(R), zeros(C, W, H, n)
            J.batchnorm_backward!(dx, bn, x, y, dy, n)
            @test check_grad(loss, x, dx)
            @test check_grad(loss, gamma, copy(dgamma))
            @test check_grad(loss, beta, copy(dbeta))
            with_residual && @test check_grad(loss, residual, dy)   # dy now holds the residual's gradient

            # Inference uses the moving statistics.
            J.batchnorm_forward!(y, bn, x, n, false; residual = residual)
            pre = gamma .* (x .- mm) ./ sqrt.(mv .+ 1e-5) .+ beta .+ something(residual, 0)
            @test y ≈ (relu ? max.(pre, 0) : pre)
        end
    end

    @testset "pooling, dense, softmax cross-entropy, embedding" begin
        rng = MersenneTwister(3)
        x = randn(rng, 4, 3, 2, 5)
        pooled = zeros(4, 5)
        J.avgpool_forward!(pooled, x, 5)
        @test pooled ≈ dropdims(sum(x; dims = (2, 3)); dims = (2, 3)) ./ 6
        R = randn(rng, 4, 5)
        dx = similar(x)
        J.avgpool_backward!(dx, R, 5)
        @test check_grad(() -> (J.avgpool_forward!(pooled, x, 5); sum(R .* pooled)), x, dx)

        w, b = randn(rng, 3, 4), randn(rng, 3)
        d = J.Dense{Float64}(w, b, zeros(3, 4), zeros(3))
        xin, y = randn(rng, 4, 5), zeros(3, 5)
        J.dense_forward!(y, d, xin, 5)
        @test y ≈ w * xin .+ b
        R = randn(rng, 3, 5)
        dxin = zeros(4, 5)
        J.dense_backward!(dxin, d, xin, R, 5)
        dense_loss() = (J.dense_forward!(y, d, xin, 5); sum(R .* y))
        @test check_grad(dense_loss, xin, dxin) && check_grad(dense_loss, w, copy(d.dw)) &&
              check_grad(dense_loss, b, copy(d.db))

        logits, labels = randn(rng, 3, 5), Int32[0, 2, 1, 1, 0]
        dlogits = zeros(3, 5)
        l = J.softmax_xent!(dlogits, logits, labels, 5)
        @test l ≈ sum(log(sum(exp.(logits[:, i]))) - logits[labels[i] + 1, i] for i in 1:5) / 5
        @test check_grad(() -> J.softmax_xent!(zeros(3, 5), logits, labels, 5), logits, copy(dlogits))
        @test J.count_correct([0.1 0.9; 0.8 0.2], Int32[1, 1], 2) == 1

        emb, tokens = randn(rng, 4, 6), Int32[0, 5, 2, 5]
        out = zeros(4, 4)
        J.embedding_forward!(out, emb, tokens)
        @test out == emb[:, tokens .+ 1]
        R = randn(rng, 4, 4)
        demb = zeros(4, 6)
        J.embedding_backward!(demb, R, tokens)
        @test check_grad(() -> (J.embedding_forward!(out, emb, tokens); sum(R .* out)), emb, demb)
    end

    @testset "shortcut A" begin
        rng = MersenneTwister(4)
        a = randn(rng, 4, 6, 6, 2)
        s = J.PadShortcut{Float64}(zeros(8, 3, 3, 2), 2)
        out = J.shortcut_forward!(s, a, 2, true)
        @test out[3:6, :, :, :] == a[:, 1:2:end, 1:2:end, :]
        @test all(iszero, out[1:2, :, :, :]) && all(iszero, out[7:8, :, :, :])
        R = randn(rng, 8, 3, 3, 2)
        da = zeros(size(a))
        J.shortcut_backward!(s, da, a, R, 2)
        @test check_grad(() -> sum(R .* J.shortcut_forward!(s, a, 2, true)), a, da)
    end

    @testset "fast Float32 activations" begin
        xs = Float32.(range(-100, 100; length = 400_001))
        exact_exp(x) = exp(Float64(x))
        @test maximum(x -> abs(J.exp_fast(x) / exact_exp(x) - 1), filter(x -> -87 <= x <= 88, xs)) < 2 * eps(Float32)
        @test maximum(x -> abs(J.sigmoid(x) - 1 / (1 + exact_exp(-x))), xs) < 2e-7
        @test maximum(x -> abs(J.tanh_fast(x) - tanh(Float64(x))), xs) < 3e-7
        @test J.sigmoid(0.3) == 1 / (1 + exp(-0.3)) && J.tanh_fast(0.3) == tanh(0.3)   # Float64: Base
    end

    ## Whole models (Float64): every tensor's gradient through the full network

    @testset "shapes" begin
        cfg = ResNetConfig(depth = 14, width = 8, shortcut = "B", num_classes = 5)
        m = ResNet{Float32}(cfg, 6)
        @test length(m.blocks) == 6 && size(m.stem_y) == (8, 32, 32, 6)
        @test [size(b.y) for b in m.blocks[[1, 3, 5]]] == [(8, 32, 32, 6), (16, 16, 16, 6), (32, 8, 8, 6)]
        @test m.blocks[3].shortcut isa J.ProjectionShortcut && m.blocks[4].shortcut isa J.IdentityShortcut
        J.load_weights!(m.params, initial_weights(model_spec(cfg), 1))
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
        J.WORKERS[] = 2
        try
            (ok_resnet, resnet2), (ok_lstm, lstm2) = check_model_grads(small_resnet("B"), x, y),
                                                     check_model_grads(small_lstm(), tokens, labels)
            @test ok_resnet && ok_lstm
            @test all(one_worker[1][k] == resnet2[k] for k in keys(resnet2))
            @test all(one_worker[2][k] ≈ lstm2[k] for k in keys(lstm2))
        finally
            J.WORKERS[] = 1
        end
    end

    ## Training (Float32)

    @testset "loss falls on a small batch" begin
        rng = MersenneTwister(9)
        cfg = ResNetConfig(depth = 8, width = 8, num_classes = 4, image_size = 16)
        m = ResNet{Float32}(cfg, 16)
        J.load_weights!(m.params, initial_weights(model_spec(cfg), 1))
        opt = SGD(parameter_count(m.params), Float32; lr = 0.05, momentum = 0.9)
        x, y = rand(rng, Float32, 3, 16, 16, 16), Int32.(rand(rng, 0:3, 16))
        losses = [train_step!(m, opt, x, y, 0:15) for _ in 1:8]
        @test all(isfinite, losses) && losses[end] < 0.7 * losses[1]

        lcfg = LSTMConfig(vocab_size = 30, embedding_dim = 8, units = 8, maxlen = 6)
        lm = LSTMNet{Float32}(lcfg, 16)
        J.load_weights!(lm.params, initial_weights(model_spec(lcfg), 1))
        opt = Adam(parameter_count(lm.params), Float32; lr = 0.02, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8)
        tokens, labels = Int32.(rand(rng, 0:29, 6, 16)), Int32.(rand(rng, 0:1, 16))
        losses = [train_step!(lm, opt, tokens, labels, 0:15) for _ in 1:8]
        @test all(isfinite, losses) && losses[end] < 0.7 * losses[1]
    end

    @testset "evaluating between epochs leaves training as it was" begin
        rng = MersenneTwister(11)
        images = (rand(rng, Float32, 3, 8, 8, 24), Int32.(rand(rng, 0:2, 24)),
                  rand(rng, Float32, 3, 8, 8, 10), Int32.(rand(rng, 0:2, 10)))   # 10 test images: a short last batch
        tokens = (Int32.(rand(rng, 0:6, 5, 24)), Int32.(rand(rng, 0:1, 24)),
                  Int32.(rand(rng, 0:6, 5, 10)), Int32.(rand(rng, 0:1, 10)))
        batches = reshape(Int32.(randperm(rng, 24) .- 1), 8, 3)
        function resnet_sgd()
            cfg = ResNetConfig(depth = 8, width = 4, shortcut = "B", num_classes = 3, image_size = 8)
            m = ResNet{Float32}(cfg, 8)
            return m, SGD(parameter_count(m.params), Float32; lr = 0.05, momentum = 0.9), cfg
        end
        function lstm_adam()
            cfg = LSTMConfig(vocab_size = 7, embedding_dim = 3, units = 4, maxlen = 5, num_classes = 2)
            m = LSTMNet{Float32}(cfg, 8)
            opt = Adam(parameter_count(m.params), Float32; lr = 0.02, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8)
            return m, opt, cfg
        end
        fields(opt) = [getfield(opt, f) for f in fieldnames(typeof(opt))]
        # Losses, every tensor (weights, BN moving statistics) and the final accuracy after two
        # epochs; evaluating after the first, when asked, must change no tensor or optimizer state.
        function two_epochs(make, (x, y, xt, yt), evaluate_between)
            m, opt, cfg = make()
            load_weights!(m.params, initial_weights(model_spec(cfg), 1))
            losses = [train!(m, opt, x, y, batches)]
            if evaluate_between
                state = deepcopy((m.params.arrays, fields(opt)))
                accuracy = evaluate(m, xt, yt)
                @test (m.params.arrays, fields(opt)) == state
                @test evaluate(m, xt, yt) == accuracy
            end
            push!(losses, train!(m, opt, x, y, batches))
            # A copy: the trainable tensors are windows onto memory the model owns.
            return losses, deepcopy(m.params.arrays), evaluate(m, xt, yt)
        end
        @test two_epochs(resnet_sgd, images, true) == two_epochs(resnet_sgd, images, false)
        @test two_epochs(lstm_adam, tokens, true) == two_epochs(lstm_adam, tokens, false)
    end

    @testset "predict: the evaluation's forward pass, in inference mode" begin
        rng = MersenneTwister(16)
        cases = ((ResNetConfig(depth = 8, width = 4, shortcut = "A", num_classes = 3, image_size = 8),
                  rand(rng, Float32, 3, 8, 8, 11), Int32.(rand(rng, 0:2, 11))),
                 (LSTMConfig(vocab_size = 7, embedding_dim = 3, units = 4, maxlen = 5),
                  Int32.(rand(rng, 0:6, 5, 11)), Int32.(rand(rng, 0:1, 11))))
        for (cfg, x, y) in cases
            m = J.build_model(cfg, 4)   # 11 samples: batches of 4, 4 and 3
            load_weights!(m.params, initial_weights(model_spec(cfg), 1))
            # BN moving statistics away from their initial 0 and 1: one training step.
            opt = J.optimizer(Dict{String,Any}("name" => "sgd", "learning_rate" => 0.1, "momentum" => 0.9),
                              parameter_count(m.params), Float32)
            train_step!(m, opt, x, y, 0:3)
            logits = predict(m, x)
            @test logits isa Matrix{Float32} && size(logits) == (cfg.num_classes, 11)
            # Batch by batch, the forward pass in inference mode.
            for idx in (0:3, 4:7, 8:10)
                gather!(m, x, y, idx)
                @test logits[:, idx .+ 1] == predict!(m, length(idx), false)[:, 1:length(idx)]
                @test logits[:, idx .+ 1] == predict(m, length(idx))
            end
            @test evaluate(m, x, y) == count(i -> argmax(logits[:, i]) == y[i] + 1, 1:11) / 11
            # Other batch sizes, the same logits up to the GEMMs' rounding.
            single = J.build_model(cfg, 1)
            load_weights!(single.params, canonical_weights(m.params))
            @test predict(single, x) ≈ logits rtol = 1e-5
        end
    end

    @testset "train_epochs: an evaluation after every epoch, outside its time" begin
        trained = Int[]
        per_epoch = J.train_epochs(epoch -> (push!(trained, epoch); 0.5 * epoch),
                                   () -> (sleep(0.2); length(trained) / 10), 3, "some-stack")
        @test keys(per_epoch) == (:startup_seconds, :epoch_seconds, :train_loss_per_epoch, :test_accuracy_per_epoch,
                                  :eval_seconds_per_epoch)
        @test per_epoch.startup_seconds > 0   # this test process's age
        @test trained == [0, 1, 2] && per_epoch.train_loss_per_epoch == [0.0, 0.5, 1.0]
        @test per_epoch.test_accuracy_per_epoch == [0.1, 0.2, 0.3]   # each after its epoch's training
        @test length(per_epoch.eval_seconds_per_epoch) == 3 && all(>=(0.2), per_epoch.eval_seconds_per_epoch)
        @test all(<(0.2), per_epoch.epoch_seconds)   # the epochs' times hold no evaluation
    end

    @testset "the epoch line: seconds, loss, samples/s, test accuracy, the run's time left" begin
        # The same example as Python's and R's tests of their line (docs/stack-contract.md):
        # time left = 1 epoch left x (mean epoch 1.5 s + mean evaluation 0.5 s, epochs 2-3).
        @test J.epoch_line("s", 4, [3.0, 1.0, 2.0], [0.5, 0.25, 0.75], 1.23456, 0.5, 100) ==
              "[s] epoch 3/4: 2.00 s, loss 1.2346, 50 samples/s, test accuracy 0.5000, run time left ~2 s"
        # After the first epoch, the first is all there is: 2 epochs x (2 s + 0.5 s).
        @test J.epoch_line("s", 3, [2.0], [0.5], 0.7, 0.25, 64) ==
              "[s] epoch 1/3: 2.00 s, loss 0.7000, 32 samples/s, test accuracy 0.2500, run time left ~5 s"
        @test (J.decimals(0.0, 2), J.decimals(0.05, 4), J.decimals(-1.5, 1), J.decimals(2.5, 0), J.decimals(NaN, 4)) ==
              ("0.00", "0.0500", "-1.5", "2", "NaN")
        path, io = mktemp()
        redirect_stderr(io) do
            J.train_epochs(epoch -> (sleep(0.01); 0.5), () -> 0.75, 3, "some-stack"; samples = 6)
        end
        close(io)
        lines = readlines(path)
        @test length(lines) == 3
        @test all(l -> occursin(r"^\[some-stack\] epoch [123]/3: [0-9]+\.[0-9]{2} s, loss 0\.5000, [0-9]+ samples/s, test accuracy 0\.7500, run time left ~[0-9]+ s$", l), lines)
        @test all(l -> 0 < parse(Int, match(r", ([0-9]+) samples/s", l)[1]) <= 600, lines)  # 6 samples, >= 10 ms
        @test endswith(lines[3], "run time left ~0 s")
    end

    @testset "optimizers" begin
        w, g = Float64[1, 2], Float64[0.5, -1]
        sgd = SGD(2, Float64; lr = 0.1, momentum = 0.9)
        J.update!(sgd, w, g)
        J.update!(sgd, w, g)
        @test w ≈ [1, 2] .- 0.1 .* g .- 0.1 .* (0.9 .* g .+ g)
        w = Float64[1, 2]
        adam = Adam(2, Float64; lr = 0.1, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8)
        J.update!(adam, w, g)
        # Step 1: m = 0.1g, v = 0.001g²; epsilon sits on the uncorrected sqrt(v) (docs/models.md).
        @test w ≈ [1, 2] .- 0.1 .* g ./ (abs.(g) .+ 1e-8 / sqrt(1 - 0.999))

        # From the run spec's `training.optimizer`.
        opt = J.optimizer(Dict{String,Any}("name" => "sgd", "learning_rate" => 0.1, "momentum" => 0.9), 3, Float32)
        @test opt isa SGD{Float32} && opt.lr == 0.1f0 && length(opt.velocity) == 3
        @test_throws ArgumentError J.optimizer(Dict{String,Any}("name" => "rmsprop"), 3, Float32)
    end

    ## The entry point's code path: check mode and a full run writing the measurements

    @testset "run_stack" begin
        rng = MersenneTwister(10)
        L, N = 6, 40
        tokens = Int32.(rand(rng, 0:19, L, N))
        labels = Int32.(rand(rng, 0:1, N))
        shards = write_shards(joinpath(TMP, "run", "shards"), tokens, labels, tokens[:, 1:10], labels[1:10])
        order = write_npy(joinpath(TMP, "run", "order.npy"), hcat([Int32.(randperm(rng, N) .- 1) for _ in 1:2]...))
        config = Dict{String,Any}("vocab_size" => 20, "embedding_dim" => 4, "units" => 5, "maxlen" => L, "num_classes" => 2)
        mspec = model_spec("lstm", config)
        wmanifest = write_weights(joinpath(TMP, "run", "weights"), mspec, initial_weights(mspec, 3))
        spec = Dict{String,Any}("spec_version" => 3, "stack" => "julia-native", "model" => "lstm", "dataset" => "tiny",
            "model_config" => config,
            "training" => Dict{String,Any}("epochs" => 2, "batch_size" => 16, "optimizer" => Dict{String,Any}(
                "name" => "adam", "learning_rate" => 0.001, "beta_1" => 0.9, "beta_2" => 0.999, "epsilon" => 1e-8)),
            "shards" => shards, "order" => order, "initial_weights" => wmanifest, "init_seed" => 1, "threads" => 1,
            "seed" => 1, "device" => "cpu", "measurements" => joinpath(TMP, "run", "measurements.json"),
            "check" => nothing, "check_steps" => 0)
        run(spec) = J.main([write_json_atomic(joinpath(TMP, "run", "spec.json"), spec)])

        @test run(merge(spec, Dict{String,Any}("check" => "step_losses", "check_steps" => 3))) == 0
        check = read_json(spec["measurements"])
        @test check["check"] == "step_losses" && length(check["losses"]) == 2   # 40 samples: 2 full batches
        @test check["parameter_count"] == 20 * 4 + 4 * (4 * 5 + 5 * 5 + 5) + 2 * 5 + 2 == parameter_count(mspec)

        @test run(spec) == 0
        r = read_json(spec["measurements"])
        schema = read_schema("measurements")
        @test Set(keys(r)) == Set(keys(schema["properties"]))   # raw measurements only, every one
        @test r["status"] == "ok" && r["reason"] === nothing && r["measurements_version"] == 2
        @test r["stack"] == "julia-native" && r["model"] == "lstm" && r["dataset"] == "tiny" && r["device"] == "cpu"
        @test r["language_version"] == string(VERSION) && startswith(r["framework_version"], "JuliaNative.jl ")
        @test length(r["epoch_seconds"]) == 2 && all(>(0), r["epoch_seconds"])
        @test r["train_loss_per_epoch"][1] ≈ sum(check["losses"]) / 2   # same batches, same weights
        @test length(r["test_accuracy_per_epoch"]) == 2 && all(a -> 0 <= a <= 1, r["test_accuracy_per_epoch"])
        @test length(r["eval_seconds_per_epoch"]) == 2 && all(>=(0), r["eval_seconds_per_epoch"])
        @test r["peak_rss_mb"] > 0 && r["startup_seconds"] > 0
        @test r["parameter_count"] == check["parameter_count"] && r["fused_kernel"] === false
        @test occursin("one Julia thread", r["kernel_notes"])

        # Without a weights file the stack draws its own (Julia's generator: other numbers).
        @test run(merge(spec, Dict{String,Any}("initial_weights" => nothing))) == 0
        @test read_json(spec["measurements"])["train_loss_per_epoch"] != r["train_loss_per_epoch"]

        # Bad input ends with a message and exit code 1 (the launcher records it as failed).
        @test run(merge(spec, Dict{String,Any}("shards" => joinpath(TMP, "nowhere.json")))) == 1
        @test run(merge(spec, Dict{String,Any}("model_config" => merge(config, Dict{String,Any}("vocab_size" => 10))))) == 1
        @test run(merge(spec, Dict{String,Any}("device" => "gpu"))) == 1
        @test run(merge(spec, Dict{String,Any}("spec_version" => 1))) == 1
        @test J.main(String[]) == 2
    end

    @testset "profile mode: three blocks, the profiled one traced by the kernel timer" begin
        rng = MersenneTwister(12)
        N = 40
        lstm_config = Dict{String,Any}("vocab_size" => 20, "embedding_dim" => 4, "units" => 5, "maxlen" => 6,
                                       "num_classes" => 2)
        resnet_config = Dict{String,Any}("depth" => 8, "width" => 4, "shortcut" => "A", "num_classes" => 3,
                                         "image_size" => 8, "channels" => 3)
        data = Dict("lstm" => (Int32.(rand(rng, 0:19, 6, N)), Int32.(rand(rng, 0:1, N))),
                    "resnet" => (rand(rng, Float32, 3, 8, 8, N), Int32.(rand(rng, 0:2, N))))
        optimizers = Dict("lstm" => Dict{String,Any}("name" => "adam", "learning_rate" => 0.001, "beta_1" => 0.9,
                                                     "beta_2" => 0.999, "epsilon" => 1e-8),
                          "resnet" => Dict{String,Any}("name" => "sgd", "learning_rate" => 0.1, "momentum" => 0.9))
        mkpath(joinpath(TMP, "profile"))
        order = write_npy(joinpath(TMP, "profile", "order.npy"), hcat(Int32.(randperm(rng, N) .- 1)))
        function profile_spec(model, config; steps = 2)
            x, y = data[model]
            dir = joinpath(TMP, "profile", model)
            shards = write_shards(joinpath(dir, "shards"), x, y, collect(selectdim(x, ndims(x), 1:8)), y[1:8])
            return Dict{String,Any}("spec_version" => 3, "stack" => "julia-native", "model" => model,
                "dataset" => "tiny", "model_config" => config,
                "training" => Dict{String,Any}("epochs" => 1, "batch_size" => 8, "optimizer" => optimizers[model]),
                "shards" => shards, "order" => order, "initial_weights" => nothing, "init_seed" => 1, "threads" => 1,
                "seed" => 1, "device" => "cpu", "measurements" => joinpath(dir, "out", "profile.json"),
                "check" => "profile", "check_steps" => steps)
        end
        run(spec) = J.main([write_json_atomic(joinpath(TMP, "profile", "spec.json"), spec)])
        # The profile output (the contract's keys, no training measurements) and its trace's events.
        function profile(model, config; steps = 2)
            spec = profile_spec(model, config; steps = steps)
            @test run(spec) == 0
            out = read_json(spec["measurements"])
            @test Set(keys(out)) == Set(["check", "stack", "model", "steps", "profiler", "unprofiled_seconds",
                                         "profiled_seconds", "trace", "parameter_count", "framework_version"])
            @test out["check"] == "profile" && out["stack"] == "julia-native" && out["model"] == model
            @test out["steps"] == steps && out["unprofiled_seconds"] > 0 && out["profiled_seconds"] > 0
            @test out["profiler"] == "DLRosetta kernel timer (Julia $(VERSION))"
            @test out["parameter_count"] == parameter_count(model_spec(model, config))
            @test startswith(out["framework_version"], "JuliaNative.jl ") && occursin("OpenBLAS", out["framework_version"])
            trace_path = joinpath(dirname(spec["measurements"]), out["trace"])
            @test out["trace"] == "profile.trace.json" && isfile(trace_path)
            trace = read_json(trace_path)
            @test trace isa Vector{Any} && !isempty(trace)
            @test all(e -> e["ph"] == "X" && e["pid"] == getpid() && e["dur"] >= 0 && e["ts"] >= 0, trace)
            # Events cover the profiled block only, and at most its wall time.
            @test maximum(e -> e["ts"] + e["dur"], trace) <= out["profiled_seconds"] * 1e6 * 1.01 + 100
            count_of(name) = count(e -> e["name"] == name, trace)
            @test count_of("batch_gather") == count_of("softmax_cross_entropy") == steps
            return out, trace
        end
        categories(trace) = Set(e["cat"] for e in trace)

        out, trace = profile("resnet", resnet_config)
        @test issubset(["conv_gemm", "normalisation", "elementwise", "loss", "optimiser", "data"], categories(trace))
        @test count(e -> e["name"] == "sgd_update", trace) == 2
        # Depth 8: a stem and three blocks, two convs each, forward and backward.
        @test count(e -> e["name"] == "conv_forward", trace) == count(e -> e["name"] == "conv_backward", trace) == 2 * 7
        @test all(e -> e["cat"] == "conv_gemm", filter(e -> startswith(e["name"], "conv_"), trace))
        n_events = length(kernel_events())
        @test n_events == length(trace)

        out, trace = profile("lstm", lstm_config; steps = 4)   # 5 batches: the blocks wrap around
        @test issubset(["recurrent", "data", "conv_gemm", "loss", "optimiser"], categories(trace))
        @test count(e -> e["name"] == "lstm_forward", trace) == 4 * length(J.LSTMNet{Float32}(
            LSTMConfig(; (Symbol(k) => v for (k, v) in lstm_config)...), 8).slices)
        @test count(e -> e["name"] == "adam_update", trace) == 4

        # With the timer off (training), the layers record nothing.
        n_events = length(kernel_events())
        spec = merge(profile_spec("lstm", lstm_config), Dict{String,Any}("check" => nothing, "check_steps" => 0))
        @test run(spec) == 0
        @test length(kernel_events()) == n_events && !kernel_timer_on()
        @test haskey(read_json(spec["measurements"]), "epoch_seconds")

        # check_steps 0 is no profile: a bad spec, exit code 1.
        @test run(profile_spec("lstm", lstm_config; steps = 0)) == 1
    end

    @testset "trained weights, then inference mode on them" begin
        rng = MersenneTwister(17)
        N, n_test = 40, 10
        resnet = Dict{String,Any}("depth" => 8, "width" => 4, "shortcut" => "B", "num_classes" => 3,
                                  "image_size" => 8, "channels" => 3)
        lstm = Dict{String,Any}("vocab_size" => 20, "embedding_dim" => 4, "units" => 5, "maxlen" => 6,
                                "num_classes" => 2)
        data = Dict("resnet" => (rand(rng, Float32, 3, 8, 8, N + n_test), Int32.(rand(rng, 0:2, N + n_test))),
                    "lstm" => (Int32.(rand(rng, 0:19, 6, N + n_test)), Int32.(rand(rng, 0:1, N + n_test))))
        optimizers = Dict("resnet" => Dict{String,Any}("name" => "sgd", "learning_rate" => 0.1, "momentum" => 0.9),
                          "lstm" => Dict{String,Any}("name" => "adam", "learning_rate" => 0.01, "beta_1" => 0.9,
                                                     "beta_2" => 0.999, "epsilon" => 1e-8))
        root = joinpath(TMP, "inference")
        order = write_npy(joinpath(mkpath(root), "order.npy"), hcat([Int32.(randperm(rng, N) .- 1) for _ in 1:2]...))
        run(spec) = J.main([write_json_atomic(joinpath(root, "spec.json"), spec)])
        # As the launcher runs it: the entry script in a process of its own.
        stack_dir = normpath(joinpath(@__DIR__, ".."))
        entry(spec) = success(`$(Base.julia_cmd()) --project=$stack_dir --startup-file=no
                               $(joinpath(stack_dir, "run_stack.jl")) $(write_json_atomic(joinpath(root, "spec.json"), spec))`)
        for (model, config) in (("resnet", resnet), ("lstm", lstm))
            x, y = data[model]
            dir = joinpath(root, model)
            mspec = model_spec(model, config)
            shards = write_shards(joinpath(dir, "shards"), collect(selectdim(x, ndims(x), 1:N)), y[1:N],
                                  collect(selectdim(x, ndims(x), N + 1:N + n_test)), y[N + 1:end])
            initial = write_weights(joinpath(dir, "initial"), mspec, initial_weights(mspec, 3))
            train = Dict{String,Any}("spec_version" => 3, "stack" => "julia-native", "model" => model,
                "dataset" => "tiny", "model_config" => config,
                "training" => Dict{String,Any}("epochs" => 2, "batch_size" => 8, "optimizer" => optimizers[model]),
                "shards" => shards, "order" => order, "initial_weights" => initial, "init_seed" => 3,
                "threads" => 1, "seed" => 1, "device" => "cpu", "measurements" => joinpath(dir, "train.json"),
                "check" => nothing, "check_steps" => 0, "trained_weights" => joinpath(dir, "trained"),
                "inference" => nothing)

            # Training keeps its final weights: the weights bundle the contract describes.
            @test run(train) == 0
            measured = read_json(train["measurements"])
            trained = joinpath(dir, "trained", "manifest.json")
            weights = read_initial_weights(trained, mspec)
            manifest = read_json(trained)
            @test [e["name"] for e in manifest["arrays"]] == [p.name for p in mspec.params]
            @test all(e -> e["dtype"] == "float32", manifest["arrays"])
            @test manifest["meta"] == Dict{String,Any}("model" => model, "model_config" => config, "seed" => 3,
                                                       "parameter_count" => parameter_count(mspec),
                                                       "stack" => "julia-native", "dataset" => "tiny", "epochs" => 2,
                                                       "trained" => true)
            @test weights != read_initial_weights(initial, mspec)
            # They are the trained model, BN moving statistics included: a model loading them
            # scores the last epoch's test accuracy.
            m = J.build_model(model_config(model, config), 8)
            load_weights!(m.params, weights)
            xt, yt = collect(selectdim(x, ndims(x), N + 1:N + n_test)), y[N + 1:end]
            @test evaluate(m, xt, yt) == measured["test_accuracy_per_epoch"][end]
            model == "resnet" && @test any(!iszero, weights["stem.bn.moving_mean"])
            # Without `trained_weights`, none is kept.
            @test run(merge(train, Dict{String,Any}("trained_weights" => nothing,
                                                    "measurements" => joinpath(dir, "untrained.json")))) == 0
            @test !isdir(joinpath(dir, "untrained"))

            # Inference mode on the trained weights, through the entry script: calls timed per
            # batch size, then the test logits of each bundle to evaluate (its own trained
            # weights, the initial ones).
            inference = Dict{String,Any}("batch_sizes" => [1, 3, 25], "warmup_calls" => 2, "min_calls" => 5,
                                         "max_calls" => 40, "min_seconds" => 0.01,
                                         "evaluate" => [Dict{String,Any}("stack" => "julia-native", "weights" => trained),
                                                        Dict{String,Any}("stack" => "initial", "weights" => initial)],
                                         "logits" => joinpath(dir, "logits"), "onnx" => joinpath(dir, "model.onnx"))
            infer = merge(train, Dict{String,Any}("check" => "inference", "initial_weights" => trained,
                                                  "trained_weights" => nothing, "inference" => inference,
                                                  "measurements" => joinpath(dir, "inference.json")))
            @test entry(infer)
            out = read_json(infer["measurements"])
            @test Set(keys(out)) == Set(["check", "stack", "model", "dataset", "language_version", "framework_version",
                                         "device", "parameter_count", "startup_seconds", "peak_rss_mb", "batches",
                                         "logits", "onnx_export"])
            @test out["check"] == "inference" && out["stack"] == "julia-native" && out["model"] == model
            @test out["dataset"] == "tiny" && out["device"] == "cpu" && out["language_version"] == string(VERSION)
            @test startswith(out["framework_version"], "JuliaNative.jl ") && out["parameter_count"] == parameter_count(mspec)
            @test out["startup_seconds"] > 0 && out["peak_rss_mb"] > 0
            @test [b["batch_size"] for b in out["batches"]] == [1, 3, 25]
            for b in out["batches"]
                @test Set(keys(b)) == Set(["batch_size", "warmup_calls", "call_seconds"]) && b["warmup_calls"] == 2
                calls = b["call_seconds"]
                @test all(>(0), calls) && 5 <= length(calls) <= 40
                @test length(calls) == 40 || sum(calls) >= 0.01
                @test length(calls) == 5 || sum(calls[1:end - 1]) < 0.01   # no call beyond what was asked
            end
            @test out["onnx_export"]["status"] == "unsupported" && Set(keys(out["onnx_export"])) == Set(["status", "reason"])
            @test occursin("ONNX.jl", out["onnx_export"]["reason"]) && occursin("registry", out["onnx_export"]["reason"])
            @test !ispath(inference["onnx"])
            # The logits bundle: one float32 [n_test, classes] array per stack evaluated, rows in
            # test-split order, and the stacks' own forward passes on those weights.
            @test out["logits"] == joinpath(dir, "logits", "manifest.json")
            logits, lm = read_bundle(out["logits"], "logits")
            @test [e["name"] for e in lm["arrays"]] == ["julia-native", "initial"]
            @test lm["meta"] == Dict{String,Any}("stack" => "julia-native", "model" => model, "dataset" => "tiny")
            @test all(e -> e["dtype"] == "float32" && e["shape"] == [n_test, config["num_classes"]], lm["arrays"])
            @test logits["julia-native"] == predict(m, xt)
            load_weights!(m.params, read_initial_weights(initial, mspec))
            @test logits["initial"] == predict(m, xt)
            @test count(i -> argmax(logits["julia-native"][:, i]) == yt[i] + 1, 1:n_test) / n_test ==
                  measured["test_accuracy_per_epoch"][end]

            # Nothing to evaluate and no ONNX path: no logits, no export.
            quiet = merge(inference, Dict{String,Any}("evaluate" => [], "logits" => nothing, "onnx" => nothing,
                                                      "batch_sizes" => [2]))
            @test run(merge(infer, Dict{String,Any}("inference" => quiet))) == 0
            out = read_json(infer["measurements"])
            @test out["logits"] === nothing && out["onnx_export"] === nothing && length(out["batches"]) == 1

            # A bundle to evaluate that is missing, fails its checksums or is another model's
            # ends the run with exit code 1, naming the file.
            broken = joinpath(dir, "broken")
            cp(joinpath(dir, "trained"), broken)
            bytes = read(joinpath(broken, "head.dense.bias.npy"))
            bytes[end] ⊻= 0x01
            write(joinpath(broken, "head.dense.bias.npy"), bytes)
            other_spec = model == "resnet" ? model_spec("lstm", lstm) : model_spec("resnet", resnet)
            other = write_weights(joinpath(dir, "other"), other_spec, initial_weights(other_spec, 1))
            for (bad, named) in ((joinpath(dir, "nowhere", "manifest.json"), joinpath(dir, "nowhere", "manifest.json")),
                                 (joinpath(broken, "manifest.json"), joinpath(broken, "head.dense.bias.npy")),
                                 (other, other))
                evaluate_bad = merge(inference, Dict{String,Any}("evaluate" => [Dict{String,Any}("stack" => "x",
                                                                                                "weights" => bad)]))
                path, io = mktemp()
                code = redirect_stderr(() -> run(merge(infer, Dict{String,Any}("inference" => evaluate_bad))), io)
                close(io)
                @test code == 1 && occursin(named, read(path, String))
            end
        end
    end

    @testset "a Float32 training step allocates next to nothing, as precompiled" begin
        # Julia 1.5 caches the inference done while precompiling `main` (JuliaNative.jl); a
        # change to its call tree once left im2col! allocating 32 bytes per window in that
        # cache (a training step: 300 times the memory, twice the CPU time).
        cfg = ResNetConfig(depth = 8, width = 16)
        m = ResNet{Float32}(cfg, 4)
        J.load_weights!(m.params, initial_weights(model_spec(cfg), 1))
        c, b = m.blocks[1].conv1, m.blocks[1]
        J.im2col!(c.col[1], c, m.stem_y, 1, 1)
        J.col2im!(b.da, c, c.col[1], 1, 1)
        @test (@allocated J.im2col!(c.col[1], c, m.stem_y, 1, 1)) < 1024   # was 95 KiB per image
        @test (@allocated J.col2im!(b.da, c, c.col[1], 1, 1)) < 1024
        opt = SGD(parameter_count(m.params), Float32; lr = 0.01, momentum = 0.9)
        x, y = rand(MersenneTwister(14), Float32, 3, 32, 32, 4), Int32[0, 1, 2, 3]
        train_step!(m, opt, x, y, 0:3)
        @test (@allocated train_step!(m, opt, x, y, 0:3)) < 2^17   # closures and views: about 10 KiB
    end

    @testset "the float32 GEMM: the newest OpenBLAS, or LinearAlgebra's" begin
        rng = MersenneTwister(13)
        for (tA, tB) in (('N', 'N'), ('N', 'T'), ('T', 'N'), ('T', 'T'))
            A = randn(rng, Float32, 37, 53)
            B = randn(rng, Float32, 53, 61)
            Ap, Bp = tA == 'N' ? A : copy(A'), tB == 'N' ? B : copy(B')
            # Views with leading dimensions other than their sizes, as the layers pass them.
            Abig, Bbig, Cbig = randn(rng, Float32, size(Ap) .+ 3), randn(rng, Float32, size(Bp) .+ 5),
                               randn(rng, Float32, 37 + 2, 61 + 4)
            Av, Bv, Cv = view(Abig, 2:size(Ap, 1) + 1, 1:size(Ap, 2)), view(Bbig, 1:size(Bp, 1), 3:size(Bp, 2) + 2),
                         view(Cbig, 1:37, 2:62)
            Av .= Ap
            Bv .= Bp
            C0 = copy(Cv)
            @test J.gemm!(tA, tB, 0.5f0, Av, Bv, 2.0f0, Cv) === Cv
            @test Cv ≈ 0.5f0 * (A * B) + 2 * C0 rtol = 1e-5
            @test Cbig[:, 1] == Cbig[:, 1] && all(isfinite, Cbig)
        end
        @test_throws DimensionMismatch J.gemm!('N', 'N', 1.0f0, zeros(Float32, 2, 3), zeros(Float32, 4, 2), 0.0f0,
                                               zeros(Float32, 2, 2))
        x = randn(rng, 3, 4)   # Float64: LinearAlgebra's BLAS
        @test J.gemm!('T', 'N', 1.0, x, x, 0.0, zeros(4, 4)) ≈ x' * x
        @test J.open_own_blas(["julia"]) === nothing && J.open_own_blas([joinpath(TMP, "nowhere.so")]) === nothing
        @test J.openblas_version("OpenBLAS 0.3.21  USE64BITINT DYNAMIC_ARCH") == v"0.3.21"
        @test J.cpu_vector_isa(Set(["avx2", "fma", "avx512f"])) == "AVX-512"
        @test J.cpu_vector_isa(Set(["avx2", "fma"])) == "AVX2" && J.cpu_vector_isa(Set(["sse2"])) == "pre-AVX2"
        description = J.blas_description()
        @test occursin("OpenBLAS", description) && occursin(" kernels", description)
        own = J.OWN_BLAS[]
        @test own === nothing || occursin(basename(own.path), description)
        # The kernels in use are an AVX2 class on an AVX2 CPU, or the entry script re-runs itself.
        @test !J.blas_needs_coretype() || lowercase(J.blas_corename()) ∉ J.AVX2_CORES
    end

end
