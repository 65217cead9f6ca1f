# The epoch order file: epoch e's permutation of the 0-based training indices, drawn once
# by NumPy and read by every stack, so all languages visit the same batches in the same
# order (docs/shards.md, "Epoch order"). NumPy's [E, N] array is an (N, E) matrix here:
# one column per epoch.
# Twins: python/dlrosetta/order.py, r/R/order.R

"""
    read_order(path, epochs, samples) -> Matrix{Int32}

The order file, checked to cover at least `epochs` epochs of `samples` indices each.
"""
function read_order(path::AbstractString, epochs::Int, samples::Int)
    order = read_npy(path)
    (order isa Matrix{Int32} && size(order, 2) >= epochs && size(order, 1) == samples) ||
        throw(BundleError("epoch order $path has $(eltype(order)) shape $(reverse(size(order))); need int32 " *
                          "[E >= $epochs, $samples]"))
    all(i -> 0 <= i < samples, order) || throw(BundleError("epoch order $path has indices outside 0..$(samples - 1)"))
    return order
end

"""
    epoch_batches(order, epoch, batch_size)

Epoch `epoch`'s (0-based) batches as a (batch_size, steps) view: its permutation cut into
full batches, the remainder dropped as every stack drops it.
"""
function epoch_batches(order::Matrix{Int32}, epoch::Int, batch_size::Int)
    steps = size(order, 1) ÷ batch_size
    return reshape(view(order, 1:steps * batch_size, epoch + 1), batch_size, steps)
end

"""
    profile_blocks(order, batch_size, steps) -> (warm_up, unprofiled, profiled)

Profile mode's three blocks of `steps` batches each, as (batch_size, steps) matrices of
0-based training indices: epoch 0's batches (`epoch_batches`) k*steps .. (k+1)*steps - 1
for blocks k = 0, 1, 2 (0-based), taken cyclically modulo the number of batches, so a
short epoch still fills them. The same batches in every language.
"""
function profile_blocks(order::Matrix{Int32}, batch_size::Int, steps::Int)
    batches = epoch_batches(order, 0, batch_size)
    nb = size(batches, 2)
    (steps >= 1 && nb >= 1) ||
        throw(ArgumentError("profile blocks need steps >= 1 and a full batch; got $steps steps, $nb batches of $batch_size"))
    block(k) = batches[:, [mod(k * steps + j, nb) + 1 for j in 0:steps - 1]]
    return (warm_up = block(0), unprofiled = block(1), profiled = block(2))
end
