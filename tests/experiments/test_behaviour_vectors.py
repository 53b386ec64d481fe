"""Behaviour-vector analyses: known cases, a planted direction, and the published Llama-2 base-vs-chat picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layerdrift.analyses.vectors import contrast_vectors, cross_layer_cosine, layerwise_cosine, vector_pca
from layerdrift.concepts.behaviour_vectors import load_behaviour_vectors
from layerdrift.errors import LayerdriftError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "caa-llama2-7b-base-vs-chat.npz"
AB = ["myopic", "powerseeking", "selfawareness", "survivalinstinct", "sycophancy"]
PERSONA = ["agreeableness", "conscientiousness", "extraversion"]


def test_contrast_vector_recovers_planted_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=64)
    direction /= np.linalg.norm(direction)
    base = rng.normal(size=(3, 200, 64))
    matching = base + 2.0 * direction + 0.1 * rng.normal(size=base.shape)
    non = base + 0.1 * rng.normal(size=base.shape)
    vec = contrast_vectors(matching, non)
    assert np.all(layerwise_cosine(vec, np.tile(direction, (3, 1))) > 0.99)


def test_cosine_maps_known_cases():
    a = np.eye(4)
    np.testing.assert_allclose(layerwise_cosine(a, 5 * a), 1.0)
    np.testing.assert_allclose(cross_layer_cosine(a), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(layerwise_cosine(a, -a), -1.0)
    zero = np.vstack([a[:3], np.zeros(4)])
    assert (
        np.isnan(layerwise_cosine(zero, a)[3]) and np.isnan(cross_layer_cosine(zero)[3]).all()
    )  # no direction, no cosine
    coords, ratio = vector_pca({"x": a, "y": -a})
    assert coords["x"].shape == (4, 2) and ratio.sum() <= 1 + 1e-12


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the shared reference data is not beside this checkout")
def test_published_llama2_base_vs_chat_picture():
    vectors = load_behaviour_vectors(REFERENCE)
    base, chat = vectors["Llama-2-7b-hf"], vectors["Llama-2-7b-chat-hf"]
    assert set(base) == set(AB + PERSONA) and base["myopic"].shape == (32, 4096)
    for behaviour in AB + PERSONA:
        cos = layerwise_cosine(base[behaviour], chat[behaviour])
        assert cos[0] > (0.9 if behaviour in AB else 0.8), (behaviour, cos[0])
        assert cos[31] < 0.5, (behaviour, cos[31])
        assert cos[4:7].min() < cos[0], (behaviour, cos[4:7])
        within = cross_layer_cosine(chat[behaviour])
        assert np.allclose(np.diag(within), 1.0) and within[10, 11] > within[0, 31]  # neighbouring layers agree more


def test_loader_errors(tmp_path):
    with pytest.raises(LayerdriftError, match="does not exist"):
        load_behaviour_vectors(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", nokey=np.zeros((2, 3)))
    with pytest.raises(LayerdriftError, match="MODEL/BEHAVIOUR"):
        load_behaviour_vectors(tmp_path / "bad.npz")
