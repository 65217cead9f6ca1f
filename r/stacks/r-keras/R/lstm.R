# The LSTM sentiment classifier (docs/models.md) built with Keras 3's functional API from
# R: embedding -> one LSTM (last hidden state) -> dense logits. Keras's LSTM is the
# canonical one: gate order i, f, g, o, one bias vector, tanh/sigmoid; no masking.
#
# Twins: python/dlrosetta/stacks/keras/lstm.py, julia/stacks/julia-native/src/lstm.jl

# Build the LSTM of a run spec's model_config as a Keras model (logits out).
build_lstm <- function(cfg) {
  keras <- reticulate::import("keras", convert = FALSE)
  layers <- keras$layers
  tokens <- keras$Input(shape = reticulate::tuple(as.integer(cfg$maxlen)), dtype = "int32", name = "tokens")
  x <- call_layer(layers$Embedding(as.integer(cfg$vocab_size), as.integer(cfg$embedding_dim), name = layer_name("embedding")), tokens)
  x <- call_layer(layers$LSTM(as.integer(cfg$units), name = layer_name("lstm")), x)
  logits <- call_layer(layers$Dense(as.integer(cfg$num_classes), name = layer_name("head.dense")), x)
  keras$Model(tokens, logits, name = "lstm")
}
