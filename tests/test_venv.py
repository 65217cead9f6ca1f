"""Environment builds: a failure never replaces a working environment."""
import json
import sys

from dlrosetta import venv


def test_a_failed_update_keeps_the_working_environment(tmp_path, monkeypatch):
    env_dir = tmp_path / "torch"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    req = tmp_path / "torch.txt"
    req.write_text("torch==2.13.0\n")
    good = {"env": "torch", "status": "ok", "reason": None, "packages": ["torch==2.13.0"]}
    bad = {"env": "torch", "status": "unavailable", "reason": "pip: no network"}
    monkeypatch.setattr(venv, "build", lambda *a: good)
    assert venv.build_keeping_last_ok(req, env_dir, sys.stderr) == good
    monkeypatch.setattr(venv, "build", lambda *a: bad)
    kept = json.loads((env_dir / venv.MANIFEST).read_text())
    assert venv.build_keeping_last_ok(req, env_dir, sys.stderr) == kept | {"update_failed": "pip: no network"}
    assert json.loads((env_dir / venv.MANIFEST).read_text())["status"] == "ok"


def test_a_failed_first_build_is_unavailable(tmp_path, monkeypatch):
    bad = {"env": "torch", "status": "unavailable", "reason": "pip: no network"}
    monkeypatch.setattr(venv, "build", lambda *a: bad)
    venv.build_keeping_last_ok(tmp_path / "torch.txt", tmp_path / "torch", sys.stderr)
    assert json.loads((tmp_path / "torch" / venv.MANIFEST).read_text()) == bad
