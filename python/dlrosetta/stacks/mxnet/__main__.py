"""Entry point of the MXNet stack. MXNet takes its thread counts from the environment
when it loads, so they are set from the run spec before the trainer (and mxnet) is
imported. Twins: python/dlrosetta/stacks/pytorch/__main__.py, r/stacks/r-mxnet/run_stack.R."""
import sys

from dlrosetta.runspec import RunSpec
from dlrosetta.stacks.mxnet import configure
from dlrosetta.stacks.train import main

if len(sys.argv) == 2:
    configure(RunSpec.read(sys.argv[1]).threads)
main("dlrosetta.stacks.mxnet.trainer:MXNetTrainer")
