"""Entry point of the MXNet stack. MXNet takes its thread counts (and profile mode's
engine setting) from the environment when it loads, so they are set from the run spec
before the trainer (and mxnet) is imported.
Twins: python/dlrosetta/stacks/pytorch/__main__.py, r/stacks/r-mxnet/run_stack.R."""
import sys

from dlrosetta.runspec import RunSpec
from dlrosetta.stacks.mxnet import configure
from dlrosetta.stacks.train import main

if len(sys.argv) == 2:
    spec = RunSpec.read(sys.argv[1])
    configure(spec.threads, profile=spec.check == "profile")
main("dlrosetta.stacks.mxnet.trainer:MXNetTrainer")
