"""Python stacks, one folder per framework (TorchBench style): each holds its manifest
stack.yaml, resnet.py, lstm.py and trainer.py, and runs as
`python -m dlrosetta.stacks.<framework> spec.json`; train.py is the loop they share.

The registry (dlrosetta.registry) discovers every stack.yaml, in every language.
"""
