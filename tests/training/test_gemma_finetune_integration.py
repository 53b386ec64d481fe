"""Integration on the embedded Gemma 3 270M base: a short LoRA fine-tune whose checkpoints become a series."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_config

from layerdrift.training.series import expand_series
from layerdrift.workbench.store.extract import extract

pytestmark = pytest.mark.integration


def test_gemma_lora_checkpoints_load_as_a_series(tmp_path):
    vocab = tmp_path / "vocab.tsv"
    vocab.write_text(
        "term\tcategory\n"
        + "".join(f"{t}\tc\n" for t in ["love", "justice", "France", "electron", "nurse", "entropy", "Paris", "river"]),
        encoding="utf-8",
    )
    finetune = {
        "data": "helpful",
        "steps": 2,
        "batch_size": 2,
        "eval_examples": 2,
        "max_length": 64,
        "out": str(tmp_path / "ft"),
    }
    cfg = make_config(
        tmp_path / "run",
        {"base": "gemma3-270m"},
        vocab,
        name="gemma-series",
        capture={},
        series=[{"name": "helpful", "finetune": finetune}],
    )
    store = extract(expand_series(cfg, quiet=True), quiet=True)
    manifest = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert manifest["chat_format"] == "gemma-turns" and [c["step"] for c in manifest["checkpoints"]] == [0, 1, 2]
    assert (
        manifest["checkpoints"][1]["eval_loss"] < manifest["checkpoints"][0]["eval_loss"]
    )  # one step already learns the turn format
    saved = json.loads((tmp_path / "ft" / "step-00001" / "tokenizer_config.json").read_text())
    assert "<start_of_turn>" in (
        saved.get("chat_template") or (tmp_path / "ft" / "step-00001" / "chat_template.jinja").read_text()
    )
    assert store.series == {"helpful": ["helpful.step0", "helpful.step1", "helpful.step2"]}
    # step 0 is the base model exactly (tied embeddings and all), so its activations are the base's
    for layer in (0, 9, -1):
        assert np.array_equal(store.layer("base", "concepts", layer), store.layer("helpful.step0", "concepts", layer))
    moved = 1 - np.sum(store.layer("base", "concepts", -1) * store.layer("helpful.step2", "concepts", -1), axis=1) / (
        np.linalg.norm(store.layer("base", "concepts", -1), axis=1)
        * np.linalg.norm(store.layer("helpful.step2", "concepts", -1), axis=1)
    )
    assert 0 < moved.mean() < 0.2
