"""Every Python stack's weight converters invert each other exactly: the weights its
trainer was built with, and others loaded later (load_weights, as cross-evaluation
does), come back from canonical_weights bit for bit, in spec order, float32. Each stack
runs in its own environment through its own entry point, whose shared loop is swapped
for the round trip (HARNESS).

Twins: r/stacks/r-mxnet/tests/testthat/test-resnet.R (canonical weights load in MXNet's
       layouts and read back), tests/test_inference_mode.py (the trained bundles these
       converters write).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_RESNET
from dlrosetta.model_spec import initial_weights, model_spec
from dlrosetta.registry import STACKS
from dlrosetta.threads import thread_env
from stackcheck import TIMEOUT_S, command_or_skip

PYTHON_STACKS = [s.id for s in STACKS.values() if s.language == "python"]
OTHER_SEED = 7

# Runs the stack's entry module (`-m <module>`, as the launcher does, so its set-up before
# the framework's import happens) with dlrosetta.stacks.train.run replaced: the trainer is
# built with the spec's weights, which it gives back; then it loads those drawn with
# OTHER_SEED and gives them back. Both go to npz files beside the spec's measurements path.
HARNESS = """
import runpy, sys
from pathlib import Path
import numpy as np
from dlrosetta.model_spec import initial_weights
from dlrosetta.stacks import train

_, seed, flag, module, spec_path = sys.argv
assert flag == "-m", sys.argv

def round_trip(spec, trainer_cls):
    model, weights = train.load_model(spec)
    trainer = trainer_cls(spec, model, weights)
    out = Path(spec.measurements).parent
    np.savez(out / "built.npz", **trainer.canonical_weights())
    trainer.load_weights(initial_weights(model, int(seed)))
    np.savez(out / "loaded.npz", **trainer.canonical_weights())

train.run = round_trip
sys.argv = [module, spec_path]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def assert_exactly(path: Path, expected: dict[str, np.ndarray]) -> None:
    with np.load(path) as got:
        assert got.files == list(expected)  # every tensor, in spec order
        for name, array in expected.items():
            assert got[name].dtype == np.float32, name
            np.testing.assert_array_equal(got[name], array.astype(np.float32), err_msg=name)


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model,config", [("resnet", {}), ("resnet", {"shortcut": "B"}), ("lstm", {})],
                         ids=["resnet", "resnet-shortcut-B", "lstm"])
def test_canonical_weights_give_back_what_was_loaded(tiny_run, model, config, stack_id):
    command, env = command_or_skip(stack_id)
    # Another configuration's weights are drawn by init_seed: the tiny bundle is shortcut A's.
    overrides = {"model_config": {**TINY_RESNET, **config}, "initial_weights": None} if config else {}
    spec = tiny_run(model, stack=stack_id, **overrides)
    spec_path = Path(spec.measurements).with_suffix(".spec.json")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec.write(spec_path)
    out = subprocess.run([command[0], "-c", HARNESS, str(OTHER_SEED), *command[1:], str(spec_path)],
                         env={**os.environ, **thread_env(spec.threads), **env}, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    mspec = model_spec(model, spec.model_config)
    assert_exactly(spec_path.parent / "built.npz", initial_weights(mspec, spec.init_seed))
    assert_exactly(spec_path.parent / "loaded.npz", initial_weights(mspec, OTHER_SEED))
