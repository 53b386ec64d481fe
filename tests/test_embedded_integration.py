"""Integration on the embedded SmolLM2-135M-Instruct: reference / NF4 / INT8 over the 235 concepts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_config

from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.store.extract import extract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quant_run(tmp_path_factory):
    return extract(quant_config(tmp_path_factory.mktemp("smollm2")), quiet=True)


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


def test_patching_reference_vs_nf4_is_small_and_exact_at_the_last_block(quant_run):
    """On all prompts (not only flips), NF4's activations barely move the reference's predictions."""
    from layerdrift.workbench.experiments.patching import PatchingRun

    cfg = quant_config(
        quant_run.root,
        patching={
            "compare": ["nf4"],
            "layers": [0, 15, 29],
            "positions": 1,
            "select": "all",
            "max_prompts": 12,
            "both_directions": False,
        },
    )
    tables = PatchingRun(RunContext(cfg, quant_run)).run().tables
    table, prompts = tables["patching"], tables["patching_prompts"]
    assert len(prompts) == 12 and set(table["direction"]) == {"nf4 into reference"}
    # the typical prompt's target log-probability moves little between the two (a few prompts move by 1-2.5 nats)
    gap = (prompts["logprob_target_b"] - prompts["logprob_target_a"]).abs()
    assert gap.median() < 0.5, gap.describe()
    last = table[(table["block"] == 29) & (table["position"] == "all")].iloc[0]
    assert last["normalised_logprob"] == pytest.approx(
        1.0, abs=1e-3
    )  # NF4's last block output carries all of NF4's behaviour
    first = table[(table["block"] == 0) & (table["position"] == "all")].iloc[0]
    assert abs(first["normalised_logprob"]) < 0.5  # one early block's quantization error carries a small part of it


def test_behaviour_vectors_across_quantization(quant_run):
    """Shipped sets on reference / NF4 / INT8: NF4's vectors agree early; in the late blocks INT8 stays closer to the
    reference than NF4."""
    from layerdrift.workbench.experiments.behaviour import BehaviourRun

    cfg = quant_config(
        quant_run.root,
        behaviour={
            "sets": ["myopic-reward", "corrigibility"],
            "max_items": 20,
            "steering_items": 2,
            "steering_layers": [12],
        },
    )
    tables = BehaviourRun(RunContext(cfg, quant_run)).run().tables
    cos = tables["behaviour_cosine"]
    blocks = cos[~cos["label"].isin(["embed", "final"])]
    early = blocks[blocks["layer"].between(1, 5)].groupby("pair")["cosine"].mean()
    late = blocks[blocks["layer"] >= 20].groupby("pair")["cosine"].mean()
    # NF4 keeps the early directions; INT8 (float16 matmuls) blurs these early, low-norm vectors, so it is not bounded
    # here
    assert early["reference→nf4"] > 0.85, early
    assert late["reference→int8"] > late["reference→nf4"]  # 8-bit weights move the directions less than 4-bit ones
    steer = tables["behaviour_steering"]
    assert len(steer) == 2 * 3 * 3 and steer["p_matching"].between(0, 1).all()


def quant_config(root, **extra):
    """The embedded SmolLM2 with its NF4 and INT8 copies, on the default prompt sets."""
    variants = {
        "reference": "smollm2-135m-instruct",
        "nf4": {"source": "smollm2-135m-instruct", "quantization": "nf4"},
        "int8": {"source": "smollm2-135m-instruct", "quantization": "int8"},
    }
    return make_config(root, variants, name="smol", capture={"batch_size": 47}, **extra)


def test_birthday_manifold_on_the_embedded_model(tmp_path):
    """The date sits on a circle at the month token of SmolLM2 and reaches the word 'birthday'."""
    from layerdrift import run

    cfg = make_config(
        tmp_path / "run",
        {"reference": "smollm2-135m-instruct"},
        "embeddingdrift-235",
        name="birthday",
        capture={},
        manifold={"sets": ["birthday"], "n_prompts": 120, "folds": 4},
    )
    scores = run(cfg, quiet=True).tables["manifold_scores"]
    by = {lm: g.sort_values("point") for lm, g in scores.groupby("landmark")}
    assert len(scores) == 32 * 35 and scores["n_prompts"].iloc[0] == 120
    assert (by["source"]["score"] > 0.85).all()  # the month token, from the embedding to the final norm
    assert (scores["score_chance"].dropna() < 0.5).all()
    late = by["destination"][by["destination"]["point"] >= 20]
    assert (late["score"] > late["score_chance"] + 0.25).all()  # copied to 'birthday' in the late blocks
    assert (late["score_reuse"] < late["score"] - 0.2).all()  # ... in another subspace than at the month
