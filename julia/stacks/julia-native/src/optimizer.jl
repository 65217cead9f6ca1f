# The run spec's `training.optimizer`: SGD with momentum and Adam as docs/models.md states
# them, one loop over a model's flat parameter and gradient vectors (parameters.jl). The
# frameworks' built-in counterparts: torch.optim.SGD and Adam, keras.optimizers.SGD and Adam.
# Twins: none

abstract type Optimizer end

const OPTIMIZER_ITEM = 1 << 15  # parameters per unit of parallel work
item_range(n::Int, k::Int) = (k - 1) * OPTIMIZER_ITEM + 1:min(k * OPTIMIZER_ITEM, n)

"""
SGD with heavy-ball momentum, no Nesterov, no weight decay: `v = m*v + g; w -= lr*v`
(PyTorch's form; Keras's `v = m*v - lr*g; w += v` is the same for a constant rate).
"""
struct SGD{T} <: Optimizer
    lr::T
    momentum::T
    velocity::Vector{T}
end
SGD(n::Int, ::Type{T}; lr, momentum) where {T} = SGD{T}(T(lr), T(momentum), zeros(T, n))

"""
Adam in the form docs/models.md fixes for every stack (Keras's and TensorFlow's, epsilon
added to the uncorrected sqrt(v)): `w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)`.
"""
mutable struct Adam{T} <: Optimizer
    lr::Float64
    beta1::Float64
    beta2::Float64
    epsilon::Float64
    m::Vector{T}
    v::Vector{T}
    t::Int
end
Adam(n::Int, ::Type{T}; lr, beta1, beta2, epsilon) where {T} =
    Adam{T}(lr, beta1, beta2, epsilon, zeros(T, n), zeros(T, n), 0)

"The run spec's `training.optimizer` for `n` parameters of type T."
function optimizer(config::AbstractDict, n::Int, ::Type{T}) where {T}
    name = config["name"]
    name == "sgd" && return SGD(n, T; lr = config["learning_rate"], momentum = config["momentum"])
    name == "adam" && return Adam(n, T; lr = config["learning_rate"], beta1 = config["beta_1"],
                                  beta2 = config["beta_2"], epsilon = config["epsilon"])
    throw(ArgumentError("unknown optimizer $(repr(name)); julia-native knows \"sgd\" and \"adam\""))
end

function update!(opt::SGD{T}, w::Vector{T}, g::Vector{T}) where {T}
    lr, mom, vel = opt.lr, opt.momentum, opt.velocity
    @timed_kernel "optimiser" "sgd_update" parallel(cld(length(w), OPTIMIZER_ITEM)) do _, k
        @inbounds @simd for i in item_range(length(w), k)
            vel[i] = mom * vel[i] + g[i]
            w[i] -= lr * vel[i]
        end
    end
    return w
end

function update!(opt::Adam{T}, w::Vector{T}, g::Vector{T}) where {T}
    opt.t += 1
    b1, b2 = T(opt.beta1), T(opt.beta2)
    step = T(opt.lr * sqrt(1 - opt.beta2^opt.t) / (1 - opt.beta1^opt.t))
    eps = T(opt.epsilon)
    m, v = opt.m, opt.v
    @timed_kernel "optimiser" "adam_update" parallel(cld(length(w), OPTIMIZER_ITEM)) do _, k
        @inbounds @simd for i in item_range(length(w), k)
            m[i] += (1 - b1) * (g[i] - m[i])
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            w[i] -= step * m[i] / (sqrt(v[i]) + eps)
        end
    end
    return w
end
