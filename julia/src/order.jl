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
