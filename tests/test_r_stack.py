"""The r-keras stack (r/inst/run_stack.R: R driving Keras through reticulate) run as the
launcher runs it. Its first loss and parameter count are checked with every other stack
in test_cross_stack.py; here: R adds no numerical difference at all to the Python Keras
stack on the same backend, and a two-epoch run leaves a valid ok record."""
import json

import pytest

from dlrosetta.launch import launch
from dlrosetta.record import Record, validate_record_dict
from stackcheck import VENVS, TIMEOUT_S, assert_ok_record, command_or_skip, run_check


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_step_losses_are_the_python_keras_stacks(tiny_run, model):
    """Same Keras, same backend, same optimiser, weights and batches (Keras's own Adam on
    TensorFlow's sparse embedding gradient would differ, by 4e-5: both use the dense one)."""
    r = run_check(tiny_run(model, stack="r-keras", check="step_losses", check_steps=3))
    py = run_check(tiny_run(model, stack="keras-tensorflow", check="step_losses", check_steps=3))
    assert r["parameter_count"] == py["parameter_count"]
    assert r["losses"] == pytest.approx(py["losses"], rel=1e-6)


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(tiny_run, tmp_path, model):
    command_or_skip("r-keras")
    spec = tiny_run(model, stack="r-keras", threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "r-keras.log", VENVS,
                    timeout_s=TIMEOUT_S)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert Record.read(tmp_path / "record.json") == record
    assert_ok_record(record, spec, threads=2)
