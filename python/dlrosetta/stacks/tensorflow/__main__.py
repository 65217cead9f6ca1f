"""Entry point of the native TensorFlow stack. Twins: python/dlrosetta/stacks/{pytorch,keras}/__main__.py."""
from dlrosetta.stacks.train import main

main("dlrosetta.stacks.tensorflow.trainer:TensorFlowTrainer")
