# The LSTM sentiment classifier (docs/models.md) built from R with MXNet Gluon, as the
# Python MXNet stack builds it: embedding -> gluon.rnn.LSTM (MXNet's fused RNN operator:
# oneDNN's LSTM on CPU, gate order i, f, g, o as the canonical one) -> last hidden state
# -> dense logits. Tokens are transposed to time-major, the operator's own layout. The
# layer's second (h2h) bias is held at zero and not trained (grad_req 'null'), so the
# model has the canonical single bias.
#
# Twins: python/dlrosetta/stacks/mxnet/lstm.py, r/stacks/r-keras/R/lstm.R, julia/stacks/julia-native/src/lstm.jl

# Build the LSTM of a run spec's model_config as a Gluon network (int tokens in, logits out).
build_lstm <- function(cfg) {
  cls <- hybrid_block_class("LSTMClassifier", init = function(self, vocab_size, embedding_dim, units, num_classes) {
    gluon <- reticulate::import("mxnet.gluon", convert = FALSE)
    self$embedding <- gluon$nn$Embedding(vocab_size, embedding_dim)
    self$lstm <- gluon$rnn$LSTM(units, layout = "TNC", input_size = embedding_dim)
    self$dense <- gluon$nn$Dense(num_classes, in_units = units)
    h2h_bias <- self$lstm$l0_h2h_bias
    h2h_bias$grad_req <- "null"
  }, forward = function(self, F, tokens) {
    out <- call_block(self$lstm, call_block(self$embedding, F$transpose(tokens)))  # [T, N, units]
    h_last <- F$squeeze(F$slice_axis(out, axis = 0L, begin = -1L, end = NULL), axis = 0L)
    call_block(self$dense, h_last)
  })
  cls(as.integer(cfg$vocab_size), as.integer(cfg$embedding_dim), as.integer(cfg$units), as.integer(cfg$num_classes))
}

# Each of the network's parameters with its value from the canonical weights (R arrays,
# canonical layout): kernels [in, 4u] -> [4u, in], dense [in, out] -> [out, in], the
# h2h bias zero. A list of list(parameter, value), as load_gluon_parameters takes.
lstm_parameters <- function(net, weights) {
  lstm <- net$lstm
  list(list(net$embedding$weight, weights$embedding.embeddings),
       list(lstm$l0_i2h_weight, t(weights$lstm.kernel)),
       list(lstm$l0_h2h_weight, t(weights$lstm.recurrent_kernel)),
       list(lstm$l0_i2h_bias, weights$lstm.bias),
       list(lstm$l0_h2h_bias, numeric(length(weights$lstm.bias))),
       list(net$dense$weight, t(weights$head.dense.kernel)),
       list(net$dense$bias, weights$head.dense.bias))
}

# The canonical tensors as the network holds them now, back in the canonical layouts
# (the h2h bias, a constant zero, has no canonical tensor).
lstm_canonical <- function(net) {
  lstm <- net$lstm
  list(embedding.embeddings = gluon_value(net$embedding$weight),
       lstm.kernel = t(gluon_value(lstm$l0_i2h_weight)),
       lstm.recurrent_kernel = t(gluon_value(lstm$l0_h2h_weight)),
       lstm.bias = gluon_value(lstm$l0_i2h_bias),
       head.dense.kernel = t(gluon_value(net$dense$weight)),
       head.dense.bias = gluon_value(net$dense$bias))
}
