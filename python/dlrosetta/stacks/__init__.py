"""Python stacks, one folder per framework (TorchBench style): each holds resnet.py,
lstm.py and trainer.py, and runs as `python -m dlrosetta.stacks.<framework> spec.json`.

The stack registry (ids, languages, environments, entry points for every language) is
dlrosetta.registry.
"""
