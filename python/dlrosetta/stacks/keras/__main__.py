"""Entry point of the Keras 3 stacks; the backend is KERAS_BACKEND's (Keras reads it at import).
Twins: python/dlrosetta/stacks/{pytorch,tensorflow}/__main__.py, r/stacks/r-keras/run_stack.R."""

from dlrosetta.stacks.train import main

main("dlrosetta.stacks.keras.trainer:KerasTrainer")
