"""The canonical model definitions: counts follow the documented formulas."""
import numpy as np
import pytest

from dlrosetta.model_spec import initial_weights, lstm_spec, model_spec, resnet_spec


def resnet_formula(depth, w, shortcut, k):
    """docs/models.md, written out independently of the layer list."""
    n = (depth - 2) // 6
    total = 27 * w + 2 * w
    c_in = w
    for stage in range(3):
        c = w * 2**stage
        for block in range(n):
            total += 9 * c_in * c + 9 * c * c + 4 * c
            if shortcut == "B" and stage > 0 and block == 0:
                total += c_in * c + 2 * c
            c_in = c
    return total + 4 * w * k + k


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 56])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet_count_matches_formula(depth, shortcut):
    assert resnet_spec(depth, 16, shortcut, 10).parameter_count == resnet_formula(depth, 16, shortcut, 10)


def test_resnet20_is_the_papers_0_27m():
    assert resnet_spec(20, 16, "A", 10).parameter_count == 269_722


def test_lstm_count_matches_formula():
    v, e, h = 30000, 125, 100
    assert lstm_spec(v, e, h, 150, 2).parameter_count == v * e + 4 * (e * h + h * h + h) + 2 * h + 2


@pytest.mark.parametrize("depth", [7, 9, 21, 2])
def test_bad_depth_names_the_rule(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet_spec(depth, 16, "A", 10)


def test_bad_shortcut_rejected():
    with pytest.raises(ValueError, match="shortcut"):
        resnet_spec(8, 16, "C", 10)


def test_initial_weights_follow_the_scheme():
    spec = model_spec("lstm", {"vocab_size": 100, "embedding_dim": 8, "units": 10, "maxlen": 5, "num_classes": 2})
    w = initial_weights(spec, seed=3)
    assert list(w) == spec.names()
    assert all(a.dtype == np.float32 for a in w.values())
    assert np.abs(w["embedding.embeddings"]).max() <= 0.05
    assert np.abs(w["lstm.kernel"]).max() <= 1 / np.sqrt(10)
    bias = w["lstm.bias"]
    assert (bias[10:20] == 1).all() and (bias[:10] == 0).all() and (bias[20:] == 0).all()
    # Same seed, same numbers; different seed, different numbers.
    assert np.array_equal(initial_weights(spec, 3)["lstm.kernel"], w["lstm.kernel"])
    assert not np.array_equal(initial_weights(spec, 4)["lstm.kernel"], w["lstm.kernel"])


def test_he_uniform_limit_uses_fan_in():
    spec = resnet_spec(8, 16, "A", 10)
    w = initial_weights(spec, 0)["stage1.block1.conv1.kernel"]
    limit = np.sqrt(6 / (3 * 3 * 16))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
