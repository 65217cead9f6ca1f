"""R's bundle reader (r/R/npy.R), called in-process through rpy2, returns
every shard exactly as NumPy reads it: same dtype, shape and bytes."""
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_image_shards, tiny_token_shards
from dlrosetta.npy import read_manifest


@pytest.fixture(scope="module")
def rbridge():
    pytest.importorskip("rpy2", reason="rpy2 is not installed (envs/rpy2.txt, installed where R is present)")
    from dlrosetta import rbridge

    try:
        rbridge.r_env()
    except rbridge.RUnavailable as e:
        pytest.skip(str(e))
    return rbridge


@pytest.mark.parametrize("make_shards", [tiny_image_shards, tiny_token_shards], ids=["float32-images", "int32-tokens"])
def test_r_reads_every_shard_as_numpy_does(rbridge, tmp_path, make_shards):
    manifest = make_shards(tmp_path / "shards", n_train=5, n_test=3)
    names = [e["name"] for e in read_manifest(manifest)["arrays"]]
    assert names == ["x_train", "y_train", "x_test", "y_test"]
    for name in names:
        expected = np.load(Path(manifest).parent / f"{name}.npy")
        got = rbridge.read_shard_r(manifest, name)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name


def test_r_rejects_a_changed_shard_naming_it(rbridge, tmp_path):
    manifest = tiny_token_shards(tmp_path / "shards", n_train=5, n_test=3)
    path = Path(manifest).parent / "x_test.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    from rpy2.rinterface_lib.embedded import RRuntimeError

    with pytest.raises(RRuntimeError, match=r"checksum mismatch for .*x_test\.npy"):
        rbridge.read_shard_r(manifest, "x_test")
    assert rbridge.read_shard_r(manifest, "x_test", verify=False).tobytes() == np.load(path).tobytes()


def test_starting_r_leaves_child_processes_their_own_libraries(rbridge):
    """R's start-up sets LD_LIBRARY_PATH; a child Python must still load its own libpython
    (Snakemake and the stacks are started from processes that have run R)."""
    import subprocess
    import sys

    rbridge.r_env()
    out = subprocess.run([sys.executable, "-c", "import ssl, sys; print(sys.version)"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
