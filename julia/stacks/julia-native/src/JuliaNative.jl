# dlrosetta's julia-native stack: the ResNet and the LSTM of docs/models.md written in
# plain Julia on the standard library only (no registry here: no Flux, Knet, NNlib), in
# their style: weights are plain arrays (in and out in the canonical layout:
# load_weights!, canonical_weights), a model has predict! (predict: logits in inference
# mode), the loss and train!. DLRosetta (julia/src/) reads and writes everything; this
# package is the framework.
#
# Every layer has an explicit backward pass, is generic over the element type (Float32
# to train, Float64 for the finite-difference checks in test/runtests.jl), preallocates
# its workspaces and writes into the caller's buffers, so a training step allocates next
# to nothing.
# Twins: none
module JuliaNative

using LinearAlgebra
using DLRosetta
using DLRosetta: epochs, batch_size, optimizer_config

const PACKAGE_VERSION = let toml = read(joinpath(@__DIR__, "..", "Project.toml"), String)
    VersionNumber(match(r"^version\s*=\s*\"([^\"]+)\""m, toml)[1])
end

"""
A trainable model: `ResNet{T}` or `LSTMNet{T}`. Each has fields `config`, `params`
(`Parameters`), `batch`, `labels`, `logits`, `dlogits`, and methods `batch_input`,
`predict!`, `backward!` and `kernel_notes`.
"""
abstract type Model{T<:AbstractFloat} end

include("blas.jl")
include("threads.jl")
include("parameters.jl")
include("images.jl")
include("conv.jl")
include("batchnorm.jl")
include("pooling.jl")
include("dense.jl")
include("loss.jl")
include("embedding.jl")
include("activations.jl")
include("optimizer.jl")
include("resnet.jl")
include("lstm.jl")
include("train.jl")

# Julia 1.5 caches no native code between sessions, but it does cache type inference
# done while precompiling; inferring the entry point's call tree here takes about two
# seconds off every run's start-up (measured). The training steps gain nothing this way:
# their first-epoch cost is code generation.
precompile(main, (Vector{String},))

export ResNet, LSTMNet, Parameters, SGD, Adam, load_weights!, canonical_weights, predict!, predict, backward!,
       gather!, train_step!, train!, evaluate, run_stack

end
