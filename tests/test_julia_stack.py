"""Julia seen from Python: the shared library DLRosetta (julia/src/) reads shards and the
epoch order byte-identically to NumPy, and every Julia stack of the registry (today
julia/stacks/julia-native) leaves a valid ok record from a two-thread run through the
launcher. First losses, step losses and parameter counts are checked with every other
stack in test_cross_stack.py. Julia's own Test suites test the library's readers and writers
(julia/test/runtests.jl) and every layer's gradient (julia/stacks/julia-native/test/runtests.jl)."""
import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest

from dlrosetta.launch import launch
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import REPO, STACKS
from dlrosetta.shards import read_shards
from stackcheck import VENVS, TIMEOUT_S, assert_ok_record, command_or_skip

JULIA_STACKS = [s.id for s in STACKS.values() if s.language == "julia"]


def test_julia_reads_shards_and_order_as_numpy_does(tiny_run):
    """The bytes behind each Julia array hash like NumPy's C-order bytes, and indexing
    the reversed axes gives NumPy's elements."""
    julia = shutil.which("julia")
    if julia is None:
        pytest.skip("julia not found on PATH (envs/setup.sh installs it)")
    for model in ("resnet", "lstm"):
        spec = tiny_run(model)
        script = f"""
            using DLRosetta, SHA
            s = DLRosetta.read_shards({json.dumps(spec.shards)})
            order = DLRosetta.read_npy({json.dumps(spec.order)})
            for (name, a) in (("x_train", s.x_train), ("y_train", s.y_train), ("x_test", s.x_test),
                              ("y_test", s.y_test), ("order", order))
                println(name, " ", bytes2hex(sha256(reinterpret(UInt8, vec(a)))), " ", join(size(a), ","))
            end
            println("element ", repr(Float64(s.x_train[(2:ndims(s.x_train) + 1)...])))
        """
        out = subprocess.run([julia, f"--project={REPO / 'julia'}", "--startup-file=no", "-e", script],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        shards = read_shards(spec.shards)
        arrays = {"x_train": shards.x_train, "y_train": shards.y_train, "x_test": shards.x_test,
                  "y_test": shards.y_test, "order": np.load(spec.order)}
        for name, a in arrays.items():
            digest, shape = lines[name].split()
            assert digest == hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(), name
            assert tuple(int(d) for d in shape.split(",")) == a.shape[::-1], name
        # Julia's x[2, 3, ..., k+1] (1-based, reversed axes) is NumPy's x[k, ..., 2, 1].
        x = shards.x_train
        assert float(lines["element"]) == float(x[tuple(range(x.ndim, 0, -1))])


@pytest.mark.parametrize("stack_id", JULIA_STACKS)
def test_two_epochs_on_two_threads_write_a_valid_ok_record(tiny_run, tmp_path, stack_id):
    command_or_skip(stack_id)
    spec = tiny_run("resnet", stack=stack_id, threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "julia.log", VENVS,
                    timeout_s=TIMEOUT_S)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert Record.read(tmp_path / "record.json") == record
    assert_ok_record(record, spec, threads=2)
