# Tests of the shared Julia library DLRosetta:
#   julia --project=julia --startup-file=no julia/test/runtests.jl
# The readers (JSON, npy, bundles, shards, run spec, weights, epoch order) and the
# writers (npy files byte for byte as NumPy's, bundles NumPy and dlrosetta's Python read,
# trained weights), parameter counts against docs/models.md, and the measurements writer
# against schemas/measurements.schema.json. The stacks' suites (julia/stacks/*/test/)
# test the models.
# Twins: tests/test_npy.py, tests/test_model_spec.py, r/tests/testthat/test-npy.R

using Test, SHA
using DLRosetta
const D = DLRosetta

include("fixtures.jl")

const TMP = mktempdir()
const REPO = normpath(joinpath(@__DIR__, "..", ".."))
const PYTHON = joinpath(REPO, ".venv", "bin", "python")

"Run `script` with the orchestrator's Python (dlrosetta importable); its standard output."
python(script::AbstractString) =
    read(setenv(`$PYTHON -c $script`, merge(ENV, Dict("PYTHONPATH" => joinpath(REPO, "python")))), String)

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

@testset "DLRosetta" begin

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
        x = 0.1 + 0.2   # doubles read back exactly
        @test D.parse_json(D.json_string([x, 1 / 3]))[1] === x
        for bad in ("{", "[1,]", "{\"a\" 1}", "01", "\"abc", "[1] x", "tru", "\"\\x\"")
            @test_throws JSONError D.parse_json(bad)
        end
    end

    @testset "npy" begin
        for a in (rand(Float32, 3, 4, 5, 2), Int32.(reshape(0:11, 4, 3)), Int32[7, -8], fill(1.5f0))
            path = write_npy(joinpath(TMP, "a.npy"), a)
            b = read_npy(path)
            @test typeof(b) == typeof(a) && b == a
            @test filesize(path) % 64 == length(a) * 4 % 64   # the header fills whole 64-byte blocks
        end
        @test read_npy(write_npy(joinpath(TMP, "view.npy"), view(Int32.(reshape(0:11, 4, 3)), 2:3, :))) ==
              Int32[1 5 9; 2 6 10]
        err = try write_npy(joinpath(TMP, "f8.npy"), zeros(2)) catch e; e end
        @test err isa BundleError && occursin("f8.npy", err.msg) && occursin("Float64", err.msg)
        good = read(joinpath(TMP, "a.npy"))
        bad(bytes) = (p = joinpath(TMP, "bad.npy"); write(p, bytes); p)
        @test_throws BundleError read_npy(bad(vcat(UInt8[0], good[2:end])))            # magic
        @test_throws BundleError read_npy(bad(good[1:end-1]))                          # truncated
        @test_throws BundleError read_npy(bad(replace(String(copy(good)), "<f4" => "<f8")))
        @test_throws BundleError read_npy(bad(replace(String(copy(good)), "False" => "True ")))
        err = try read_npy(bad(good[1:end-1])) catch e; e end
        @test occursin("bad.npy", err.msg)
        @test_throws BundleError read_npy(joinpath(TMP, "missing.npy"))
    end

    @testset "npy files as NumPy writes and reads them" begin
        if !isfile(PYTHON)
            @test_skip "no orchestrator Python at $PYTHON (envs/setup.sh builds it)"
        else
            # Headers padded differently: 0-d, 1-d, a first axis of 1 to 10 digits, and one
            # that fills whole 64-byte blocks before padding (NumPy then adds a whole block).
            arrays = [fill(2.5f0), Int32[7, -8], rand(Float32, 3, 4, 5, 2), zeros(Float32, 0, 1234567891),
                      Int32.(reshape(0:11, 4, 3)), rand(Float32, 0, 3), zeros(Int32, 2, 3, 4, 5, 6, 7),
                      zeros(Float32, 10, 10, 10, 10, 100, 100, 100, 100, 100, 0)]
            paths = [write_npy(joinpath(TMP, "numpy$k.npy"), a) for (k, a) in enumerate(arrays)]
            # NumPy loads each file (dtype, the reversed Julia size, Julia's last element) and
            # saves what it read: the very bytes Julia wrote.
            out = python("""
                import numpy as np
                for path in $(repr(paths)):
                    a = np.load(path)
                    np.save(path + ".numpy.npy", a)
                    print(a.dtype, ",".join(map(str, a.shape)), repr(float(a.reshape(-1)[-1])) if a.size else "-",
                          sep="\t")
                """)
            for (line, a, path) in zip(split(chomp(out), '\n'), arrays, paths)
                dtype, shape, last = split(line, '\t')
                @test dtype == (eltype(a) == Float32 ? "float32" : "int32")
                @test shape == join(reverse(size(a)), ",")
                @test isempty(a) ? last == "-" : parse(Float64, last) == Float64(a[end])
                @test read(path) == read(path * ".numpy.npy")
            end
        end
    end

    @testset "bundles and shards" begin
        x = rand(Float32, 3, 8, 8, 6)
        y = Int32[0, 1, 2, 0, 1, 2]
        dir = joinpath(TMP, "shards")
        manifest = write_bundle(dir, "shards", ["x_train" => x, "y_train" => y, "x_test" => x[:, :, :, 1:2],
                                                "y_test" => y[1:2]], Dict("num_classes" => 3))
        s = read_shards(manifest)
        @test s.x_train == x && s.y_train == y && s.x_test == x[:, :, :, 1:2] && s.meta["num_classes"] == 3
        @test sha256_file(manifest) == bytes2hex(sha256(read(manifest)))
        # The manifest lists the arrays in their order, each with NumPy's dtype name and shape.
        m = read_json(manifest)
        @test m["format"] == "dlrosetta.shards" && m["format_version"] == 1
        @test [e["name"] for e in m["arrays"]] == ["x_train", "y_train", "x_test", "y_test"]
        @test m["arrays"][1]["file"] == "x_train.npy" && m["arrays"][1]["dtype"] == "float32"
        @test m["arrays"][1]["shape"] == [6, 8, 8, 3] && m["arrays"][2]["dtype"] == "int32"
        @test all(e -> e["sha256"] == sha256_file(joinpath(dir, e["file"])), m["arrays"])
        @test !isfile(manifest * ".tmp")
        if isfile(PYTHON)   # dlrosetta's Python reads the bundle, checksums and all, as Julia wrote it
            out = python("""
                from dlrosetta.npy import read_bundle
                arrays, manifest = read_bundle($(repr(manifest)), "shards")
                print(manifest["meta"]["num_classes"])
                for name, a in arrays.items():
                    print(name, a.dtype, ",".join(map(str, a.shape)), float(a.reshape(-1)[-1]))
                """)
            lines = split.(split(chomp(out), '\n'))
            @test lines[1] == ["3"]
            @test [l[1:3] for l in lines[2:end]] == [["x_train", "float32", "6,8,8,3"], ["y_train", "int32", "6"],
                                                     ["x_test", "float32", "2,8,8,3"], ["y_test", "int32", "2"]]
            @test parse.(Float64, [l[4] for l in lines[2:end]]) == [x[end], 2, x[end, end, end, 2], 1]
        end
        # Rewriting a bundle removes the old manifest first: after a failed rewrite none is left
        # to describe the new, incomplete files.
        other = joinpath(TMP, "rewritten")
        @test isfile(write_bundle(other, "weights", ["a" => Int32[1]], Dict{String,Any}()))
        @test_throws BundleError write_bundle(other, "weights", ("a" => Int32[2], "b" => [0.5]), Dict{String,Any}())
        @test !isfile(joinpath(other, "manifest.json")) && read_npy(joinpath(other, "a.npy")) == Int32[2]
        @test_throws BundleError read_bundle(manifest, "weights")
        @test_throws BundleError read_bundle(manifest, "shards"; names = ["nope"])

        # A changed byte fails the checksum, naming the file.
        path = joinpath(dir, "y_test.npy")
        bytes = read(path)
        bytes[end] ⊻= 0x01
        write(path, bytes)
        err = try read_shards(manifest) catch e; e end
        @test err isa BundleError && occursin("checksum mismatch", err.msg) && occursin(path, err.msg)
        @test read_shards(manifest; verify = false).y_test != y[1:2]
        rm(path)
        err = try read_shards(manifest) catch e; e end
        @test err isa BundleError && occursin(path, err.msg)

        # A manifest whose shape disagrees with the file.
        m["arrays"][1]["shape"] = [6, 8, 8, 4]
        m["arrays"][1]["sha256"] = sha256_file(joinpath(dir, "x_train.npy"))
        write_json_atomic(manifest, m)
        err = try read_bundle(manifest, "shards"; names = ["x_train"]) catch e; e end
        @test err isa BundleError && occursin("x_train.npy", err.msg)
    end

    @testset "run spec" begin
        schema = read_schema("runspec")
        @test Set(string.(fieldnames(RunSpec))) == Set(keys(schema["properties"]))
        @test schema["properties"]["spec_version"]["const"] == D.SPEC_VERSION
        base = Dict{String,Any}("spec_version" => 3, "stack" => "some-stack", "model" => "lstm", "dataset" => "d",
                                "model_config" => Dict{String,Any}(),
                                "training" => Dict{String,Any}("epochs" => 3, "batch_size" => 8,
                                                               "optimizer" => Dict{String,Any}("name" => "sgd")),
                                "shards" => "s", "order" => "o", "initial_weights" => nothing, "init_seed" => 1,
                                "threads" => 2, "seed" => 3, "device" => "cpu", "measurements" => "m",
                                "check" => nothing, "check_steps" => 0, "trained_weights" => nothing,
                                "inference" => nothing)
        path = joinpath(TMP, "spec.json")
        write_spec(d) = write_json_atomic(path, d)
        # Reading `d` raises a RunSpecError naming the file; its message.
        function refused(d)
            err = try read_runspec(write_spec(d)) catch e; e end
            @test err isa RunSpecError && occursin(path, err.msg)
            return err isa RunSpecError ? err.msg : ""
        end
        spec = read_runspec(write_spec(base))
        @test spec.threads == 2 && spec.initial_weights === nothing && spec.check === nothing
        @test spec.measurements == "m" && D.epochs(spec) == 3 && D.batch_size(spec) == 8
        @test D.optimizer_config(spec)["name"] == "sgd"
        @test spec.trained_weights === nothing && spec.inference === nothing
        # Keys with defaults may be left out, as Python's RunSpec allows.
        short = read_runspec(write_spec(filter(kv -> kv[1] ∉ ("check", "check_steps", "trained_weights", "inference"),
                                               base)))
        @test all(getfield(short, f) == getfield(spec, f) for f in fieldnames(RunSpec))
        @test read_runspec(write_spec(merge(base, Dict{String,Any}("trained_weights" => "/w")))).trained_weights == "/w"
        for (key, value) in (("extra", 1), ("check", "other"), ("device", "tpu"), ("threads", "2"), ("threads", 0),
                             ("trained_weights", 1))
            refused(merge(base, Dict{String,Any}(key => value)))
        end
        @test occursin("\"step_losses\", \"profile\" or \"inference\"", refused(merge(base, Dict{String,Any}("check" => "x"))))
        refused(delete!(copy(base), "measurements"))
        # Profile mode (docs/stack-contract.md) profiles check_steps >= 1 steps.
        profile = read_runspec(write_spec(merge(base, Dict{String,Any}("check" => "profile", "check_steps" => 10))))
        @test profile.check == "profile" && profile.check_steps == 10
        @test occursin("check_steps", refused(merge(base, Dict{String,Any}("check" => "profile"))))

        # Inference mode: `inference` is given exactly then, with the schema's keys.
        @test collect(D.INFERENCE_KEYS) == schema["properties"]["inference"]["oneOf"][2]["required"]
        inference = Dict{String,Any}("batch_sizes" => [1, 256], "warmup_calls" => 5, "min_calls" => 100,
                                     "max_calls" => 2000, "min_seconds" => 0.5,
                                     "evaluate" => [Dict{String,Any}("stack" => "a", "weights" => "/a/manifest.json")],
                                     "logits" => "/l", "onnx" => nothing)
        infer = merge(base, Dict{String,Any}("check" => "inference", "inference" => inference))
        spec = read_runspec(write_spec(infer))
        @test spec.check == "inference" && spec.inference == inference && spec.inference["batch_sizes"] == [1, 256]
        @test occursin("exactly when check is \"inference\"", refused(merge(infer, Dict{String,Any}("check" => nothing))))
        @test occursin("exactly when check is \"inference\"", refused(merge(infer, Dict{String,Any}("inference" => nothing))))
        @test occursin("unknown keys [\"extra\"]", refused(merge(infer, Dict{String,Any}("inference" =>
                                                              merge(inference, Dict{String,Any}("extra" => 1))))))
        @test occursin("lacks keys [\"onnx\"]", refused(merge(infer, Dict{String,Any}("inference" =>
                                                           delete!(copy(inference), "onnx")))))
        @test occursin("no `logits` folder", refused(merge(infer, Dict{String,Any}("inference" =>
                                                          merge(inference, Dict{String,Any}("logits" => nothing))))))
        no_evaluation = merge(inference, Dict{String,Any}("evaluate" => [], "logits" => nothing))
        @test read_runspec(write_spec(merge(infer, Dict{String,Any}("inference" => no_evaluation)))).inference["logits"] ===
              nothing

        # A version 2 spec, or version 1 (with `record`), is refused for its version, not for a key.
        @test occursin("version 2", refused(merge(base, Dict{String,Any}("spec_version" => 2))))
        v1 = merge(delete!(copy(base), "measurements"), Dict{String,Any}("spec_version" => 1, "record" => "r"))
        @test occursin("version 1", refused(v1))
        @test_throws RunSpecError read_runspec(joinpath(TMP, "nowhere.json"))
    end

    @testset "model spec" begin
        for (depth, shortcut, expected) in ((8, "A", 75290), (20, "A", 269722), (20, "B", 272474))
            spec = model_spec(ResNetConfig(depth = depth, width = 16, shortcut = shortcut, num_classes = 10))
            @test spec.model == "resnet"
            @test parameter_count(spec) == expected == resnet_formula(depth, 16, shortcut, 10)
        end
        V, E, H = 30000, 125, 100
        spec = model_spec("lstm", Dict("vocab_size" => V, "embedding_dim" => E, "units" => H, "maxlen" => 150,
                                       "num_classes" => 2))
        @test spec.model == "lstm" && parameter_count(spec) == 3840602 == V * E + 4 * (E * H + H * H + H) + 2H + 2
        @test [p.name for p in spec.params] == ["embedding.embeddings", "lstm.kernel", "lstm.recurrent_kernel",
                                                "lstm.bias", "head.dense.kernel", "head.dense.bias"]

        # Canonical names and order (python/dlrosetta/model_spec.py), shortcut B's projection included.
        names = [p.name for p in model_spec(ResNetConfig(depth = 8, width = 4, shortcut = "B")).params]
        @test names[1:5] == ["stem.conv.kernel", "stem.bn.gamma", "stem.bn.beta", "stem.bn.moving_mean",
                             "stem.bn.moving_variance"]
        @test "stage2.block1.shortcut.conv.kernel" in names && !any(startswith("stage1.block1.shortcut"), names)
        @test names[end-1:end] == ["head.dense.kernel", "head.dense.bias"]
        @test [(b.name, b.cin, b.cout, b.stride) for b in resnet_blocks(ResNetConfig(depth = 8, width = 4))] ==
              [("stage1.block1", 4, 4, 1), ("stage2.block1", 4, 8, 2), ("stage3.block1", 8, 16, 2)]

        @test_throws ArgumentError model_spec(ResNetConfig(depth = 10))
        @test_throws ArgumentError model_spec(ResNetConfig(shortcut = "C"))
        @test_throws ArgumentError model_spec("mlp", Dict{String,Any}())
    end

    @testset "model config of a run spec" begin
        spec(model, config) = RunSpec(stack = "s", model = model, dataset = "d", model_config = config,
                                      training = Dict{String,Any}(), shards = "s", order = "o", initial_weights = nothing,
                                      init_seed = 1, threads = 1, seed = 1, device = "cpu", measurements = "m")
        config = Dict{String,Any}("depth" => 8, "width" => 4, "shortcut" => "A", "num_classes" => 3)
        @test model_config(spec("resnet", config)) == ResNetConfig(depth = 8, width = 4, num_classes = 3)
        for (model, bad) in (("resnet", merge(config, Dict{String,Any}("depth" => 9))),
                             ("resnet", delete!(copy(config), "width")), ("lstm", config), ("mlp", config))
            err = try model_config(spec(model, bad)) catch e; e end
            @test err isa RunSpecError && occursin("model_config for $model", err.msg)
        end
    end

    @testset "initial weights" begin
        spec = model_spec(LSTMConfig(vocab_size = 50, embedding_dim = 4, units = 3, maxlen = 5))
        w = initial_weights(spec, 1)
        @test size(w["lstm.kernel"]) == (12, 4) && size(w["embedding.embeddings"]) == (4, 50)
        @test w["lstm.bias"] == Float32[0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
        @test maximum(abs, w["lstm.recurrent_kernel"]) <= 1 / sqrt(3) && maximum(abs, w["embedding.embeddings"]) <= 0.05
        @test all(iszero, w["head.dense.bias"]) && maximum(abs, w["head.dense.kernel"]) <= sqrt(6 / 5)
        @test w == initial_weights(spec, 1) && w != initial_weights(spec, 2)
        resnet = model_spec(ResNetConfig(depth = 8, width = 4))
        rw = initial_weights(resnet, 1)
        @test maximum(abs, rw["stem.conv.kernel"]) <= sqrt(6 / 27) && all(isone, rw["stem.bn.moving_variance"])

        manifest = write_weights(joinpath(TMP, "weights"), spec, w)
        @test read_initial_weights(manifest, spec) == w
        other = model_spec(LSTMConfig(vocab_size = 51, embedding_dim = 4, units = 3, maxlen = 5))
        err = try read_initial_weights(manifest, other) catch e; e end
        @test err isa BundleError && occursin("embedding.embeddings", err.msg)
    end

    @testset "trained weights" begin
        config = Dict{String,Any}("vocab_size" => 50, "embedding_dim" => 4, "units" => 3, "maxlen" => 5,
                                  "num_classes" => 2)
        mspec = model_spec("lstm", config)
        run = RunSpec(stack = "some-stack", model = "lstm", dataset = "d", model_config = config,
                      training = Dict{String,Any}("epochs" => 4), shards = "s", order = "o", initial_weights = nothing,
                      init_seed = 7, threads = 1, seed = 1, device = "cpu", measurements = "m",
                      trained_weights = joinpath(TMP, "trained"))
        w = initial_weights(mspec, 1)
        w["head.dense.bias"] .= [0.25, -0.5]
        dir = joinpath(TMP, "trained")
        manifest = write_trained_weights(dir, run, mspec, w, 12345)
        @test manifest == joinpath(dir, "manifest.json")
        @test read_initial_weights(manifest, mspec) == w
        m = read_json(manifest)
        @test m["format"] == "dlrosetta.weights" && [e["name"] for e in m["arrays"]] == [p.name for p in mspec.params]
        @test m["meta"] == Dict{String,Any}("model" => "lstm", "model_config" => config, "seed" => 7,
                                            "parameter_count" => 12345, "stack" => "some-stack", "dataset" => "d",
                                            "epochs" => 4, "trained" => true)
        # Float64 tensors (a Float64 model) are written as the contract's float32.
        w64 = Dict(k => Float64.(v) for (k, v) in w)
        @test read_initial_weights(write_trained_weights(dir, run, mspec, w64, 1), mspec) == w
        # Weights that are not the model's are refused before anything is written.
        err = try write_trained_weights(joinpath(TMP, "not-written"), run, mspec,
                                        delete!(copy(w), "lstm.bias"), 1) catch e; e end
        @test err isa BundleError && occursin("trained weights of some-stack", err.msg) && occursin("lstm.bias", err.msg)
        @test !ispath(joinpath(TMP, "not-written"))
    end

    @testset "epoch order" begin
        order = hcat(Int32[4, 0, 3, 1, 2], Int32[0, 1, 2, 3, 4])   # NumPy's [2, 5]: two epochs
        path = write_npy(joinpath(TMP, "order.npy"), order)
        @test read_order(path, 2, 5) == order
        @test_throws BundleError read_order(path, 3, 5)             # too few epochs
        @test_throws BundleError read_order(path, 1, 6)             # other sample count
        bad = write_npy(joinpath(TMP, "bad_order.npy"), hcat(Int32[0, 1, 2, 3, 5]))
        @test_throws BundleError read_order(bad, 1, 5)
        batches = epoch_batches(order, 0, 2)
        @test batches == Int32[4 3; 0 1]    # full batches only: sample 2 is dropped
        @test epoch_batches(order, 1, 5) == reshape(order[:, 2], 5, 1)
    end

    @testset "profile blocks" begin
        # python/dlrosetta/order.py's profile_blocks: rows 0..N-1, N..2N-1, 2N..3N-1 of epoch
        # 0's batches, cyclic modulo their number; the same batches here (1-based columns).
        order = hcat(Int32[6, 0, 5, 1, 4, 2, 3], Int32[0, 1, 2, 3, 4, 5, 6])
        b = epoch_batches(order, 0, 2)   # 3 batches: [6, 0], [5, 1], [4, 2]; sample 3 is dropped
        blocks = profile_blocks(order, 2, 2)
        @test keys(blocks) == (:warm_up, :unprofiled, :profiled)
        @test blocks.warm_up == b[:, [1, 2]] && blocks.unprofiled == b[:, [3, 1]] && blocks.profiled == b[:, [2, 3]]
        @test blocks.profiled == Int32[5 4; 1 2] && blocks.profiled isa Matrix{Int32}
        @test Tuple(profile_blocks(order, 2, 1)) == (b[:, [1]], b[:, [2]], b[:, [3]])
        @test all(size(x) == (2, 5) for x in profile_blocks(order, 2, 5))   # 15 rows of 3 batches
        big = hcat(Int32.(collect(0:99)))
        @test profile_blocks(big, 10, 3).profiled == reshape(Int32.(60:89), 10, 3)   # no wrap: rows 6..8
        @test_throws ArgumentError profile_blocks(order, 2, 0)
        err = try profile_blocks(order, 8, 1) catch e; e end                     # no full batch
        @test err isa ArgumentError && occursin("0 batches of 8", err.msg)
    end

    @testset "kernel timer" begin
        reset_kernel_timer!()
        kernel_timer!(false)
        @test !kernel_timer_on()
        # Off: the value, and no event.
        @test (@timed_kernel "data" "gather" 1 + 1) == 2
        @test timed_kernel(() -> 3, "loss", "xent") == 3
        @test isempty(kernel_events())

        kernel_timer!(true)
        @test kernel_timer_on()
        value = @timed_kernel "conv_gemm" "outer" begin
            sleep(0.02)
            @timed_kernel "elementwise" "inner" (sleep(0.01); 7)
        end
        @test value == 7
        @test timed_kernel(() -> (sleep(0.005); 5), "optimiser", "update") == 5
        tasks = [Threads.@spawn(@timed_kernel "recurrent" "slice" (sleep(0.005); Threads.threadid()))
                 for _ in 1:Threads.nthreads()]
        threads = fetch.(tasks)
        kernel_timer!(false)
        @timed_kernel "data" "after" nothing   # off again: not recorded
        events = kernel_events()
        @test [e.name for e in events[1:3]] == ["outer", "inner", "update"]
        @test [e.category for e in events[1:3]] == ["conv_gemm", "elementwise", "optimiser"]
        outer, inner = events[1], events[2]
        @test outer.duration_ns >= 3e7 && inner.duration_ns >= 1e7
        @test outer.start_ns <= inner.start_ns && inner.start_ns + inner.duration_ns <= outer.start_ns + outer.duration_ns
        @test outer.thread == Threads.threadid()
        @test sort([e.thread for e in events if e.name == "slice"]) == sort(threads)   # the thread each ran on
        @test !any(e -> e.name == "after", events)
        @test all(e -> e.category in KERNEL_CATEGORIES, events) && !("overhead" in KERNEL_CATEGORIES)

        # Categories are checked: a literal one when the code is compiled, the function form's when called.
        err = try macroexpand(D, :(@timed_kernel "conv" "x" 1)) catch e; e end
        @test occursin("kernel category must be one of", sprint(showerror, err))
        kernel_timer!(true)
        @test_throws ArgumentError timed_kernel(() -> 1, "gemm", "x")
        kernel_timer!(false)

        # The trace: Chrome trace-event complete events, microseconds from the last reset.
        trace = read_json(write_kernel_trace(joinpath(TMP, "trace.json"); pid = 12))
        @test trace isa Vector{Any} && length(trace) == length(events)
        @test all(e -> Set(keys(e)) == Set(["name", "cat", "ph", "ts", "dur", "pid", "tid"]), trace)
        @test all(e -> e["ph"] == "X" && e["pid"] == 12 && e["ts"] >= 0 && e["dur"] >= 0, trace)
        @test trace[1]["name"] == "outer" && trace[1]["cat"] == "conv_gemm" && trace[1]["dur"] ≈ outer.duration_ns / 1e3
        @test trace[2]["ts"] - trace[1]["ts"] ≈ (inner.start_ns - outer.start_ns) / 1e3
        reset_kernel_timer!()
        @test isempty(kernel_events()) && read_json(write_kernel_trace(joinpath(TMP, "trace.json"))) == []
    end

    @testset "stopwatch" begin
        value, seconds = stopwatch(() -> (sleep(0.01); 42))
        @test value == 42 && seconds >= 0.01
        @test peak_rss_mb() > 0
        @test process_age_seconds() > 0 && process_age_seconds(-1) == 0.0   # no such process
    end

    @testset "measurements" begin
        schema = read_schema("measurements")
        ok = (status = "ok", stack = "some-stack", model = "lstm", dataset = "d", framework_version = "f",
              device = "cpu", parameter_count = 7, epoch_seconds = [1.5], train_loss_per_epoch = [0.25],
              test_accuracy_per_epoch = [0.5], eval_seconds_per_epoch = [0.1], startup_seconds = 3.0,
              peak_rss_mb = 100.0, fused_kernel = false, kernel_notes = "notes")
        path = write_measurements(joinpath(TMP, "measurements.json"); ok...)
        doc = read_json(path)
        @test Set(string.(keys(D.measurements(; ok...)))) == Set(keys(schema["properties"]))  # every key
        @test doc["measurements_version"] == schema["properties"]["measurements_version"]["const"]
        @test doc["reason"] === nothing && doc["language_version"] == string(VERSION)
        @test doc["epoch_seconds"] == [1.5] && doc["parameter_count"] === 7   # arrays stay arrays
        @test doc["test_accuracy_per_epoch"] == [0.5] && doc["eval_seconds_per_epoch"] == [0.1]
        @test all(haskey(doc, k) for k in schema["then"]["required"])
        # kernel notes may be left out; required measurements may not.
        @test !haskey(D.measurements(; ok..., kernel_notes = nothing), :kernel_notes)
        @test_throws ArgumentError D.measurements(; ok..., test_accuracy_per_epoch = nothing)
        @test_throws ArgumentError D.measurements(; ok..., test_accuracy = 0.5)   # version 1's single accuracy
        @test_throws ArgumentError D.measurements(; ok..., reason = "why")
        @test_throws ArgumentError D.measurements(; ok..., status = "failed")
        @test_throws ArgumentError D.measurements(; ok..., steady_epoch_seconds = 1.0)   # statistics are the launcher's
        skipped = D.measurements(status = "skipped", reason = "no framework", stack = "s", model = "resnet", dataset = "d")
        @test skipped.reason == "no framework" && !haskey(skipped, :epoch_seconds)
        @test all(haskey(skipped, Symbol(k)) for k in schema["required"])
        @test_throws ArgumentError D.measurements(status = "skipped", stack = "s", model = "resnet", dataset = "d")
        @test_throws ArgumentError D.measurements(status = "skipped", reason = "", stack = "s", model = "resnet", dataset = "d")
    end

end
