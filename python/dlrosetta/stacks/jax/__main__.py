"""Entry point of the JAX stack. Twins: python/dlrosetta/stacks/{pytorch,tensorflow,keras}/__main__.py."""
from dlrosetta.stacks.train import main

main("dlrosetta.stacks.jax.trainer:JaxTrainer")
