"""Environment builds: every environment from its committed lock, with uv (pip where uv is
missing); the manifest names the lock's checksum; a changed lock or spec rebuilds; a
failure never replaces a working environment."""
import base64
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest

from dlrosetta import venv
from dlrosetta.checksum import sha256_file
from dlrosetta.rerun import env_retry_reason

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "envs").glob("*.txt"))


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


# -- the committed locks ---------------------------------------------------------------

def pins(text: str) -> dict[str, str]:
    return {venv.canonical(m.group(1)): m.group(2) for m in venv.LOCK_PIN.finditer(text)}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_has_a_current_lock_with_hashes(spec):
    """envs/lock.sh was run after the spec's last edit: the lock names the spec's sha256,
    pins each top-level package at the spec's version, and hashes every package."""
    lock = venv.lock_of(spec)
    assert lock.is_file(), f"no {lock.name}: run bash envs/lock.sh {spec.stem}"
    assert venv.stale_lock_reason(spec, lock) is None
    assert venv.LOCK_SOURCE.search(lock.read_text()).group(2) == sha256_file(spec)
    locked = venv.lock_pins(lock)
    for name, version in pins(spec.read_text()).items():
        # torch==2.13.0 resolves to the CPU build's local version, 2.13.0+cpu.
        assert locked.get(name, "").split("+")[0] == version, (lock.name, name, locked.get(name))
    stanzas = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 3)[3])
    assert len(stanzas) == len(locked) and all("--hash=sha256:" in s for s in stanzas), lock.name
    assert not any(name.startswith("nvidia-") for name in locked), f"{lock.name} pulls CUDA packages"


def test_orchestrator_lock_has_uv_and_rpy2_agrees_with_it():
    orchestrator = venv.lock_pins(REPO / "envs" / "orchestrator.lock")
    assert "uv" in orchestrator and "snakemake" in orchestrator
    rpy2 = venv.lock_pins(REPO / "envs" / "rpy2.lock")
    assert all(orchestrator.get(name, version) == version for name, version in rpy2.items())


def test_a_missing_or_stale_lock_fails_the_build_naming_the_command(tmp_path):
    spec = tmp_path / "tiny.txt"
    spec.write_text("dlrosetta-tiny==1.0\n")
    info = venv.build(spec, tmp_path / "tiny", sys.stderr)
    assert info["status"] == "unavailable" and "bash envs/lock.sh tiny" in info["reason"]
    assert info["lock_sha256"] is None
    lock = write_lock(spec, tmp_path, "1.0")
    spec.write_text("dlrosetta-tiny==2.0\n")
    info = venv.build(spec, tmp_path / "tiny", sys.stderr)
    assert "tiny.lock was compiled from another version of tiny.txt" in info["reason"]
    assert info["lock_sha256"] == sha256_file(lock) and not (tmp_path / "tiny" / "bin").exists()


# -- pip's configuration, for uv --------------------------------------------------------

def test_pip_settings_become_uv_variables(monkeypatch):
    config = {"find-links": "/opt/wheels /srv/wheels", "extra-index-url": "file:///a/simple  file:///b/simple",
              "constraint": "/etc/c.txt", "cert": "/etc/ca.crt", "no-index": "1", "timeout": "60"}
    assert venv.uv_variables(config) == {
        "UV_FIND_LINKS": "/opt/wheels,/srv/wheels", "UV_EXTRA_INDEX_URL": "file:///a/simple file:///b/simple",
        "UV_INDEX_STRATEGY": "unsafe-best-match", "UV_CONSTRAINT": "/etc/c.txt", "SSL_CERT_FILE": "/etc/ca.crt",
        "UV_NO_INDEX": "1"}
    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/wheels")
    assert venv.pip_config()["find-links"] == "/srv/wheels"  # the environment wins, as in pip
    monkeypatch.setenv("UV_FIND_LINKS", "/mine")
    assert venv.uv_environment()["UV_FIND_LINKS"] == "/mine"  # what the caller set stays


# -- real builds of a tiny lock, offline ----------------------------------------------

def make_wheel(directory: Path, version: str, name: str = "dlrosetta_tiny") -> Path:
    """A pure-Python wheel made here, so that the builds need no index."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: dlrosetta-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{f},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(t.encode())}" for f, t in files.items()] + [f"{info}/RECORD,,"]
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for f, text in [*files.items(), (f"{info}/RECORD", "\n".join(record) + "\n")]:
            z.writestr(f, text)
    return path


def write_lock(spec: Path, wheels: Path, version: str) -> Path:
    """The lock envs/lock.sh would write for the tiny wheel at `version`."""
    wheel = make_wheel(wheels, version)
    lock = venv.lock_of(spec)
    lock.write_text(f"# This file was autogenerated by uv via the following command:\n#    bash envs/lock.sh {spec.stem}\n"
                    f"# requirements: envs/{spec.name} sha256={sha256_file(spec)}\n"
                    f"dlrosetta-tiny=={version} \\\n    --hash=sha256:{sha256_file(wheel)}\n    # via -r envs/{spec.name}\n")
    return lock


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """pip (and through it uv) finds packages only in tmp_path/wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no machine-wide indexes or constraints
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    for name in ("UV_FIND_LINKS", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    return wheels


def build_twice(tmp_path, wheels):
    """Build from a lock at 1.0, then from the lock changed to 2.0; checks what the
    manifests, the retry check and the environment say at each step."""
    spec = tmp_path / "tiny.txt"
    spec.write_text("dlrosetta-tiny\n")
    env_dir = tmp_path / "venvs" / "tiny"
    lock = write_lock(spec, wheels, "1.0")
    first = venv.build_keeping_last_ok(spec, env_dir, sys.stderr)
    assert first["status"] == "ok", first["reason"]
    assert first["lock_sha256"] == sha256_file(lock) and first["requirements_sha256"] == sha256_file(spec)
    assert venv.env_lock_sha256(env_dir.parent, "tiny") == sha256_file(lock)
    assert env_retry_reason(env_dir / venv.MANIFEST, spec) is None
    write_lock(spec, wheels, "2.0")
    assert env_retry_reason(env_dir / venv.MANIFEST, spec) == "tiny.lock changed since the environment was built"
    second = venv.build_keeping_last_ok(spec, env_dir, sys.stderr)
    assert second["status"] == "ok" and second["lock_sha256"] == sha256_file(lock) != first["lock_sha256"]
    assert env_retry_reason(env_dir / venv.MANIFEST, spec) is None
    assert "dlrosetta_tiny==2.0" in second["packages"]
    ran = venv.subprocess.run([str(venv.python_of(env_dir)), "-c", "import dlrosetta_tiny; print(dlrosetta_tiny.VERSION)"],
                              capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "2.0"
    return first, second


def test_uv_builds_exactly_the_lock(tmp_path, offline):
    if not venv.find_uv():
        pytest.skip("uv is not installed (envs/setup.sh installs it into .venv)")
    first, second = build_twice(tmp_path, offline)
    assert first["installer"].startswith("uv ")
    assert first["packages"] == ["dlrosetta_tiny==1.0"] and second["packages"] == ["dlrosetta_tiny==2.0"]


def test_pip_is_the_fallback_where_uv_is_missing(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("DLROSETTA_INSTALLER", "pip")
    assert venv.find_uv() is None
    first, second = build_twice(tmp_path, offline)
    assert first["installer"].startswith("pip ")
    # What venv seeded beside pip (setuptools) is not in the lock, so it is removed.
    assert first["packages"] == ["dlrosetta_tiny==1.0"] and second["packages"] == ["dlrosetta_tiny==2.0"]


def test_a_hash_that_does_not_match_fails_the_build(tmp_path, offline):
    spec = tmp_path / "tiny.txt"
    spec.write_text("dlrosetta-tiny\n")
    lock = write_lock(spec, offline, "1.0")
    lock.write_text(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, lock.read_text()))
    info = venv.build(spec, tmp_path / "venvs" / "tiny", sys.stderr)
    assert info["status"] == "unavailable" and "from tiny.lock failed" in info["reason"]


# -- when an environment is built again ------------------------------------------------

def test_retry_reasons(tmp_path):
    spec = tmp_path / "e.txt"
    spec.write_text("x==1\n")
    lock = venv.lock_of(spec)
    lock.write_text("x==1 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    manifest = tmp_path / venv.MANIFEST
    assert env_retry_reason(manifest, spec) is None  # not built: Snakemake builds it anyway
    ok = {"status": "ok", "requirements_sha256": sha256_file(spec), "lock_sha256": sha256_file(lock)}
    cases = [({}, None),
             ({"lock_sha256": None}, "built without a lock (before e.lock existed)"),
             ({"lock_sha256": "b" * 64}, "e.lock changed since the environment was built"),
             ({"requirements_sha256": "c" * 64}, "e.txt changed since the environment was built"),
             ({"status": "unavailable", "reason": "no wheel"}, "build failed: no wheel")]
    for change, reason in cases:
        manifest.write_text(json.dumps(ok | change))
        assert env_retry_reason(manifest, spec) == reason, change
    manifest.write_text(json.dumps(ok | {"lock_sha256": "b" * 64, "update_failed": "no network"}))
    assert env_retry_reason(manifest, spec).endswith("(and the last rebuild failed: no network)")
    lock.unlink()
    manifest.write_text(json.dumps(ok))
    assert env_retry_reason(manifest, spec) == "e.lock is missing"
