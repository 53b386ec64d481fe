"""Integration on the embedded SmolLM2-135M-Instruct: reference / NF4 / INT8 over the 235 concepts."""

from __future__ import annotations

import numpy as np
import pytest

from layerdrift.workbench.config import config_from_dict
from layerdrift.workbench.pipeline import extract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quant_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2")
    cfg = config_from_dict(
        {
            "name": "smol",
            "out": str(out),
            "variants": [
                {"name": "reference", "source": "smollm2-135m-instruct", "reference": True},
                {"name": "nf4", "source": "smollm2-135m-instruct", "quantization": "nf4"},
                {"name": "int8", "source": "smollm2-135m-instruct", "quantization": "int8"},
            ],
            "capture": {"batch_size": 47},
        }
    )
    return extract(cfg, quiet=True)


def mean_cosine_distance(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean(1 - (a * b).sum(1)))


def test_final_norm_shapes_and_quantization_drift(quant_run):
    store = quant_run
    for v in ("reference", "nf4", "int8"):
        final = store.layer(v, "concepts", -1)
        assert final.shape == (235, 576) and np.isfinite(final).all()
        assert len(store.residual_points(v, "concepts")) == 32  # embed + 30 blocks + final norm
    nf4 = mean_cosine_distance(store.layer("reference", "concepts", -1), store.layer("nf4", "concepts", -1))
    int8 = mean_cosine_distance(store.layer("reference", "concepts", -1), store.layer("int8", "concepts", -1))
    assert 0.001 < nf4 < 0.1
    assert 0.0 < int8 < nf4, "8-bit weights should move representations less than 4-bit ones"
    info = store.manifest["variants"]
    assert info["nf4"]["quantization"] == "nf4" and info["reference"]["gguf_sha256"] == info["nf4"]["gguf_sha256"]
    # the embedding layer is not quantized by bitsandbytes: drift there is exactly zero
    assert mean_cosine_distance(store.layer("reference", "concepts", 0), store.layer("nf4", "concepts", 0)) < 1e-6


def test_multi_token_terms_are_flagged(quant_run):
    multi = quant_run.manifest["captures"]["reference/concepts"]["multi_token_terms"]
    assert multi["Feynman"] == 3 and "France" not in multi
