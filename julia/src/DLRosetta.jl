# dlrosetta's julia-native stack: the ResNet and the LSTM of docs/models.md written in
# plain Julia on the standard library only (no registry here: no Flux, Knet, NNlib).
# Twins: python/dlrosetta/ (the orchestrator's package and the Python stacks), r/R/.
module DLRosetta

using Dates, LinearAlgebra, Printf, Random, SHA

const FRAMEWORK = "julia-native"
const PACKAGE_VERSION = let toml = read(joinpath(@__DIR__, "..", "Project.toml"), String)
    VersionNumber(match(r"^version\s*=\s*\"([^\"]+)\""m, toml)[1])
end

"""
A trainable model: `ResNet{T}` or `LSTMNet{T}`. Each has fields `config`, `params`
(`Parameters`), `batch`, `labels`, `logits`, `dlogits`, and methods `batch_input`,
`predict!`, `backward!` and `kernel_notes`.
"""
abstract type Model{T<:AbstractFloat} end

include("json.jl")
include("npy.jl")
include("shards.jl")
include("runspec.jl")
include("timing.jl")
include("record.jl")
include("threads.jl")
include("weights.jl")
include("layers.jl")
include("optimisers.jl")
include("resnet.jl")
include("lstm.jl")
include("train.jl")

# Julia 1.5 caches no native code between sessions, but it does cache type inference
# done while precompiling; inferring the entry point's call tree here takes about two
# seconds off every run's start-up (measured). The training steps gain nothing this way:
# their first-epoch cost is code generation.
precompile(main, (Vector{String},))

export ResNetConfig, LSTMConfig, ResNet, LSTMNet, resnet_spec, lstm_spec, SGD, Adam,
       predict!, backward!, gather!, train_step!, train!, evaluate, run_stack

end
