"""Records: typed, immutable, versioned; bad records are rejected with the field named."""
import dataclasses
import json

import pytest

from dlrosetta.record import SCHEMA_VERSION, Record, RecordError, validate_record_dict

BASE = dict(stack="py-a", language="python", framework="torch", backend=None, model="resnet",
            dataset="d", hyperparameters={"model": {}, "training": {}}, threads=2, seed=1, device="cpu")


def ok_record(**changes):
    fields = dict(BASE, status="ok", language_version="3.11.7", framework_version="2.13.0",
                  shards_sha256="a" * 64, parameter_count=10, train_loss_per_epoch=[1.0, 0.5],
                  final_train_loss=0.5, test_accuracy=0.75, eval_seconds=0.1, startup_seconds=2.0,
                  peak_rss_mb=100.0, **Record.timing_fields([3.0, 1.0, 2.0], 256))
    fields.update(changes)
    return Record(**fields)


def test_round_trip(tmp_path):
    r = ok_record()
    r.write(tmp_path / "r.json")
    back = Record.read(tmp_path / "r.json")
    assert back == r and back.schema_version == SCHEMA_VERSION
    validate_record_dict(json.loads((tmp_path / "r.json").read_text()))


def test_timing_keeps_first_epoch_apart():
    r = ok_record()
    assert r.warmup_epoch_seconds == 3.0
    assert r.steady_epoch_seconds == pytest.approx(1.5)
    assert r.steady_samples_per_second == pytest.approx(256 / 1.5)
    single = Record.timing_fields([4.0], 64)
    assert single["steady_epoch_seconds"] is None and single["steady_samples_per_second"] is None


def test_records_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok_record().status = "failed"


def test_status_and_reason_rules():
    with pytest.raises(RecordError, match="needs a reason"):
        Record(**BASE, status="skipped")
    with pytest.raises(RecordError, match="status must be"):
        Record(**BASE, status="done", reason="x")
    with pytest.raises(RecordError, match="no reason"):
        ok_record(reason="but why")
    validate_record_dict(Record(**BASE, status="failed", reason="boom").to_dict())


def test_schema_rejects_bad_records():
    good = ok_record().to_dict()
    for field, value, fragment in [("test_accuracy", 1.5, "test_accuracy"),
                                   ("peak_rss_mb", None, "peak_rss_mb"),
                                   ("status", "done", "status"),
                                   ("epoch_seconds", [-1.0], "epoch_seconds")]:
        bad = dict(good, **{field: value})
        with pytest.raises(RecordError, match=fragment):
            validate_record_dict(bad)
    missing = dict(good)
    del missing["run_seconds"]
    with pytest.raises(RecordError, match="run_seconds"):
        validate_record_dict(missing)
    with pytest.raises(RecordError, match="extra"):
        validate_record_dict(dict(good, extra=1))


def test_reader_rejects_other_major_versions_naming_file_and_version(tmp_path):
    d = ok_record().to_dict()
    for version in ("1.0.0", "3.1.0"):
        with pytest.raises(RecordError, match=f"schema_version '{version}' is not readable by schema 2"):
            Record.from_dict(dict(d, schema_version=version))
    (tmp_path / "old.json").write_text(json.dumps(dict(d, schema_version="1.0.0")))
    with pytest.raises(RecordError, match=r"old.json: record schema_version '1.0.0'"):
        Record.read(tmp_path / "old.json")


def test_reader_rejects_unknown_fields():
    d = ok_record().to_dict()
    with pytest.raises(RecordError, match="unknown fields"):
        Record.from_dict(dict(d, surprise=True))


def test_env_lock_sha256_names_the_lock_or_is_null():
    """2.2: the lock the stack's environment was built from; null without one, and a 2.1
    record (which has no such field) still reads."""
    r = ok_record(env_lock_sha256="b" * 64)
    validate_record_dict(r.to_dict())
    assert Record.from_dict(r.to_dict()).env_lock_sha256 == "b" * 64
    assert ok_record().env_lock_sha256 is None
    with pytest.raises(RecordError, match="env_lock_sha256"):
        validate_record_dict(dict(r.to_dict(), env_lock_sha256="not a checksum"))
    old = ok_record().to_dict()
    del old["env_lock_sha256"]
    old["schema_version"] = "2.1.0"
    validate_record_dict(old)
    assert Record.from_dict(old).env_lock_sha256 is None


def test_trained_weights_name_the_bundle_or_are_null():
    """2.3: the trained-weights bundle beside the record and its manifest's sha256; a 2.2
    record (which has neither) still reads."""
    assert SCHEMA_VERSION == "2.3.0"
    r = ok_record(trained_weights="results/records/x/repeat1.weights/manifest.json", trained_weights_sha256="c" * 64)
    validate_record_dict(r.to_dict())
    assert Record.from_dict(r.to_dict()).trained_weights_sha256 == "c" * 64
    with pytest.raises(RecordError, match="trained_weights_sha256"):
        validate_record_dict(dict(r.to_dict(), trained_weights_sha256="nope"))
    old = ok_record().to_dict()
    for key in ("trained_weights", "trained_weights_sha256"):
        del old[key]
    old["schema_version"] = "2.2.0"
    validate_record_dict(old)
    assert Record.from_dict(old).trained_weights is None
