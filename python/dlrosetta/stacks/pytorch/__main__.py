"""Entry point of the PyTorch stack. Twins: python/dlrosetta/stacks/{tensorflow,keras}/__main__.py."""
from dlrosetta.stacks.train import main

main("dlrosetta.stacks.pytorch.trainer:TorchTrainer")
