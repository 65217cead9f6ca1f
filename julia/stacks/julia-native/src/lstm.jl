# LSTM sentiment classifier (docs/models.md): embedding -> one LSTM (gate order i, f, g, o,
# one bias, zero initial state, no masking) -> last hidden state -> dense -> softmax; the
# model of DLRosetta's model_spec(::LSTMConfig). Backward is backpropagation through time.
#
# Features run down columns: the canonical kernels [in, 4u], [u, 4u] read reversed are
# (4u, in), (4u, u), so z = Wx x + Wh h + b is plain GEMMs. The batch is cut into one
# slice per worker, each running the whole recurrence for its sequences with no
# synchronisation per step; within a slice, column b + bw*(t-1) of its buffers is sequence
# b at step t, so the input projection of all steps is one GEMM and each step's columns
# are contiguous.
# Twins: python/dlrosetta/stacks/pytorch/lstm.py, r/stacks/r-keras/R/lstm.R

"One slice's buffers (kept from forward to backward), sized for a whole batch so any slice fits."
struct LSTMSlice{T}
    tokens::Vector{Int32}   # (L*bw) step-major tokens of the slice's sequences
    xe::Matrix{T}           # (E, L*bw) embedded inputs; in backward their gradient
    z::Matrix{T}            # (4H, L*bw) gate pre-activations -> activations -> gradients
    h::Matrix{T}            # (H, (L+1)*bw) h_0 .. h_L
    c::Matrix{T}            # (H, (L+1)*bw) c_0 .. c_L
    tc::Matrix{T}           # (H, L*bw) tanh(c_t)
    dh::Matrix{T}           # (H, bw)
    dc::Matrix{T}           # (H, bw)
    dwx::Matrix{T}          # partial gradients of the slice's sequences
    dwh::Matrix{T}
    db::Vector{T}
end

function LSTMSlice{T}(cfg::LSTMConfig, batch::Int) where {T}
    E, H, L = cfg.embedding_dim, cfg.units, cfg.maxlen
    return LSTMSlice{T}(zeros(Int32, L * batch), zeros(T, E, L * batch), zeros(T, 4H, L * batch),
                         zeros(T, H, (L + 1) * batch), zeros(T, H, (L + 1) * batch), zeros(T, H, L * batch),
                         zeros(T, H, batch), zeros(T, H, batch), zeros(T, 4H, E), zeros(T, 4H, H), zeros(T, 4H))
end

struct LSTMNet{T} <: Model{T}
    config::LSTMConfig
    params::Parameters{T}
    batch::Int
    emb::Matrix{T}          # (E, V)
    wx::Matrix{T}           # (4H, E)
    wh::Matrix{T}           # (4H, H)
    b::Vector{T}            # (4H)
    demb::Matrix{T}
    dwx::Matrix{T}
    dwh::Matrix{T}
    db::Vector{T}
    dense::Dense{T}
    tokens::Matrix{Int32}   # (L, batch) input sequences
    labels::Vector{Int32}
    slices::Vector{LSTMSlice{T}}
    hT::Matrix{T}           # (H, batch) last hidden states
    dhT::Matrix{T}
    logits::Matrix{T}
    dlogits::Matrix{T}
end

function LSTMNet{T}(cfg::LSTMConfig, batch::Int) where {T}
    p = Parameters{T}(model_spec(cfg))
    a, g = p.arrays, p.grads
    H, K = cfg.units, cfg.num_classes
    dense = Dense{T}(a["head.dense.kernel"], a["head.dense.bias"], g["head.dense.kernel"], g["head.dense.bias"])
    return LSTMNet{T}(cfg, p, batch, a["embedding.embeddings"], a["lstm.kernel"], a["lstm.recurrent_kernel"],
                      a["lstm.bias"], g["embedding.embeddings"], g["lstm.kernel"], g["lstm.recurrent_kernel"],
                      g["lstm.bias"], dense, zeros(Int32, cfg.maxlen, batch), zeros(Int32, batch),
                      [LSTMSlice{T}(cfg, batch) for _ in 1:workers()],
                      zeros(T, H, batch), zeros(T, H, batch), zeros(T, K, batch), zeros(T, K, batch))
end

"The batch buffer `gather!` (train.jl) copies token sequences into."
batch_input(m::LSTMNet) = m.tokens

"The slices of a batch of n: one per worker (fewer for tiny batches)."
slices(m::LSTMNet, n::Int) = min(length(m.slices), n)

function predict!(m::LSTMNet{T}, n::Int, training::Bool) where {T}
    k = slices(m, n)
    parallel(k) do _, s
        lstm_forward!(m.slices[s], m, part(n, k, s))
    end
    return dense_forward!(m.logits, m.dense, m.hT, n)
end

function lstm_forward!(w::LSTMSlice{T}, m::LSTMNet{T}, seqs::UnitRange{Int}) where {T}
    L, H, bw = m.config.maxlen, m.config.units, length(seqs)
    cols = L * bw
    xe, z = view(w.xe, :, 1:cols), view(w.z, :, 1:cols)
    # Events of each slice's task, on its own thread: the classifier shares the time of
    # concurrent events between them.
    @timed_kernel "data" "embedding_forward" begin
        @inbounds for t in 1:L, b in 1:bw
            w.tokens[b + bw * (t - 1)] = m.tokens[t, seqs[b]]
        end
        embedding_forward!(xe, m.emb, view(w.tokens, 1:cols))
    end
    @timed_kernel "recurrent" "lstm_forward" begin
        gemm!('N', 'N', one(T), m.wx, xe, zero(T), z)
        fill!(view(w.h, :, 1:bw), zero(T))
        fill!(view(w.c, :, 1:bw), zero(T))
        for t in 1:L
            step = (t - 1) * bw + 1:t * bw          # z columns of step t = h, c columns of t-1
            t > 1 && gemm!('N', 'N', one(T), m.wh, view(w.h, :, step), one(T), view(w.z, :, step))
            lstm_cell_forward!(w, m.b, t, bw, H)
        end
        m.hT[:, seqs] .= view(w.h, :, L * bw + 1:(L + 1) * bw)
    end
    return w
end

"Gates i, f, g, o from z + b; c_t = f c_{t-1} + i g; h_t = o tanh(c_t). Activations replace z."
function lstm_cell_forward!(w::LSTMSlice{T}, bias::Vector{T}, t::Int, bw::Int, H::Int) where {T}
    z, h, c, tc = w.z, w.h, w.c, w.tc
    @inbounds for b in 1:bw
        prev = (t - 1) * bw + b     # column of step t in z and tc, of step t-1 in h and c
        cur = prev + bw
        @simd ivdep for j in 1:H
            i = sigmoid(z[j, prev] + bias[j])
            f = sigmoid(z[H + j, prev] + bias[H + j])
            g = tanh_fast(z[2H + j, prev] + bias[2H + j])
            o = sigmoid(z[3H + j, prev] + bias[3H + j])
            ct = f * c[j, prev] + i * g
            tct = tanh_fast(ct)
            z[j, prev], z[H + j, prev], z[2H + j, prev], z[3H + j, prev] = i, f, g, o
            c[j, cur], tc[j, prev], h[j, cur] = ct, tct, o * tct
        end
    end
end

"Gradients of the loss whose logit gradient `softmax_xent!` left in `m.dlogits`."
function backward!(m::LSTMNet{T}, n::Int) where {T}
    dense_backward!(m.dhT, m.dense, m.hT, m.dlogits, n)
    k = slices(m, n)
    parallel(k) do _, s
        lstm_backward!(m.slices[s], m, part(n, k, s))
    end
    @timed_kernel "recurrent" "lstm_gradient_sum" begin
        fill!(m.dwx, zero(T))
        fill!(m.dwh, zero(T))
        fill!(m.db, zero(T))
        for s in 1:k
            w = m.slices[s]
            m.dwx .+= w.dwx
            m.dwh .+= w.dwh
            m.db .+= w.db
        end
    end
    @timed_kernel "data" "embedding_backward" begin
        fill!(m.demb, zero(T))
        for s in 1:k
            w, cols = m.slices[s], m.config.maxlen * length(part(n, k, s))
            embedding_backward!(m.demb, view(w.xe, :, 1:cols), view(w.tokens, 1:cols))
        end
    end
    return m
end

function lstm_backward!(w::LSTMSlice{T}, m::LSTMNet{T}, seqs::UnitRange{Int}) where {T}
    L, H, bw = m.config.maxlen, m.config.units, length(seqs)
    cols = L * bw
    @timed_kernel "recurrent" "lstm_backward" begin
        dh, dc = view(w.dh, :, 1:bw), view(w.dc, :, 1:bw)
        dh .= view(m.dhT, :, seqs)
        fill!(dc, zero(T))
        for t in L:-1:1
            step = (t - 1) * bw + 1:t * bw
            lstm_cell_backward!(w, t, bw, H)
            t > 1 && gemm!('T', 'N', one(T), m.wh, view(w.z, :, step), zero(T), dh)
        end
        dz, xe = view(w.z, :, 1:cols), view(w.xe, :, 1:cols)
        # dWh = sum_t dz_t h_{t-1}': steps 2..L (h_0 = 0) pair z columns bw+1:cols with h_1..h_{L-1}.
        gemm!('N', 'T', one(T), view(w.z, :, bw + 1:cols), view(w.h, :, bw + 1:cols), zero(T), w.dwh)
        gemm!('N', 'T', one(T), dz, xe, zero(T), w.dwx)
        sum!(w.db, dz)
        gemm!('T', 'N', one(T), m.wx, dz, zero(T), xe)   # xe now holds the inputs' gradient
    end
    return w
end

"One step back: dh, dc at step t -> gate gradients (into z) and dc at step t-1."
function lstm_cell_backward!(w::LSTMSlice{T}, t::Int, bw::Int, H::Int) where {T}
    z, c, tc, dh, dc = w.z, w.c, w.tc, w.dh, w.dc
    @inbounds for b in 1:bw
        prev = (t - 1) * bw + b
        @simd ivdep for j in 1:H
            i, f, g, o = z[j, prev], z[H + j, prev], z[2H + j, prev], z[3H + j, prev]
            tct = tc[j, prev]
            dct = dc[j, b] + dh[j, b] * o * (1 - tct * tct)
            z[j, prev] = dct * g * i * (1 - i)
            z[H + j, prev] = dct * c[j, prev] * f * (1 - f)
            z[2H + j, prev] = dct * i * (1 - g * g)
            z[3H + j, prev] = dh[j, b] * tct * o * (1 - o)
            dc[j, b] = dct * f
        end
    end
end

kernel_notes(::LSTMNet) =
    "LSTM: input projection of all steps as one OpenBLAS sgemm, recurrent sgemm per step, " *
    "fused gate kernel; " * thread_notes("sequences")
