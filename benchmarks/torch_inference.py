"""Why keras-torch's native inference is the slowest (README, "Trained models between
stacks, and inference"): the same ResNet (config/config.yaml's, fresh weights) in
inference as keras-torch runs it (Keras 3 `predict_on_batch`, torch backend, NHWC) and
as pytorch runs it (eval, `torch.inference_mode`, channels_last), on the same PyTorch.
Prints each one's median call at batch 1 and 256 and where its time goes: the share of
the call spent in PyTorch ops (torch.profiler's self time; the rest is Python around
them) and the ops that take the most. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/torch_inference.py            # both, from their environments
    .venv/bin/python benchmarks/torch_inference.py --threads 1

Each side runs in its stack's environment (.venvs/keras, .venvs/torch), one after the
other, with the study's thread settings.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESNET = {"depth": 8, "width": 16, "shortcut": "A", "num_classes": 10}  # config/config.yaml
CALLS = {1: 300, 256: 20}


def sides():
    """The two stacks, found by what they are: Keras on the torch backend, and torch."""
    from dlrosetta.registry import STACKS

    return [next(s for s in STACKS.values() if (s.framework, s.backend) == pair)
            for pair in (("keras", "torch"), ("torch", None))]


def predict_function(framework: str, x):
    """The stack's own predict call on NHWC images `x` (a NumPy array)."""
    import torch

    if framework == "keras":
        import keras

        from dlrosetta.stacks.keras.resnet import build_resnet

        net, inputs = build_resnet(RESNET), keras.ops.convert_to_tensor(x)
        return lambda: net.predict_on_batch(inputs)
    from dlrosetta.stacks.pytorch.resnet import build_resnet

    net = build_resnet(RESNET).to(memory_format=torch.channels_last).eval()
    inputs = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC viewed as NCHW: channels_last

    def predict():
        with torch.inference_mode():
            return net(inputs).numpy()
    return predict


def measure(stack: str, framework: str, threads: int) -> None:
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    for batch, calls in CALLS.items():
        predict = predict_function(framework, np.random.default_rng(0).random((batch, 32, 32, 3), dtype=np.float32))
        for _ in range(10):
            predict()
        seconds = []
        for _ in range(calls):
            start = time.perf_counter()
            predict()
            seconds.append(time.perf_counter() - start)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(calls):
                predict()
            profiled = time.perf_counter() - start
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        in_ops = sum(e.self_cpu_time_total for e in ops) / 1e6
        top = ", ".join(f"{e.key} {100 * e.self_cpu_time_total / 1e6 / profiled:.0f} %" for e in ops[:4])
        print(f"{stack:<12} batch {batch:>3}: median call {1e3 * statistics.median(seconds):7.3f} ms; "
              f"in PyTorch ops {100 * in_ops / profiled:3.0f} % of the profiled calls ({top})", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--measure", nargs=2, metavar=("STACK", "FRAMEWORK"),
                   help="measure here, in this interpreter (what the call above runs in each environment)")
    a = p.parse_args()
    if a.measure:
        measure(*a.measure, a.threads)
        return 0
    from dlrosetta.threads import thread_env
    from dlrosetta.venv import python_of

    env = {**os.environ, **thread_env(a.threads), "PYTHONPATH": str(REPO / "python")}
    for stack in sides():
        python = python_of(REPO / ".venvs" / stack.env)
        if not Path(python).exists():
            print(f"{stack.id}: environment .venvs/{stack.env} not built (snakemake environments --cores 2)")
            continue
        subprocess.run([str(python), __file__, "--measure", stack.id, stack.framework, "--threads", str(a.threads)],
                       env=env, check=True, stderr=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
