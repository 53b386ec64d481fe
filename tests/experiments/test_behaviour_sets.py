"""Behaviour data sets and the behaviour-vector experiment on tiny models: a planted direction and the steering sign."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_config, planted_direction

from layerdrift.analyses.vectors import layerwise_cosine
from layerdrift.concepts.behaviours import BUILTIN_BEHAVIOURS, load_behaviour_set
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.experiments.behaviour import auto_steering_layers, balanced_split, p_matching

SHIPPED = ["corrigibility", "myopic-reward", "power-seeking", "self-awareness", "survival-instinct", "sycophancy"]


def test_shipped_sets_are_complete_and_balanced():
    assert sorted(BUILTIN_BEHAVIOURS) == SHIPPED
    for name in SHIPPED:
        s = load_behaviour_set(name)
        assert len(s.items) >= 40, name
        assert sum(i.matching == "A" for i in s.items) == len(s.items) // 2, name  # the letter carries no behaviour
        assert len({i.question for i in s.items}) == len(s.items), name  # no duplicates
        assert all({i.matching, i.not_matching} == {"A", "B"} for i in s.items)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"question": "Q (A) x (B) y", "answer_matching_behavior": "(A)"},
            "lacks a non-empty str field 'answer_not_matching_behavior'",
        ),
        (
            {"question": "Q (A) x (B) y", "answer_matching_behavior": "A", "answer_not_matching_behavior": "(B)"},
            "expected a letter in brackets",
        ),
        (
            {"question": "Q (A) x (B) y", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(A)"},
            "must differ",
        ),
        (
            {"question": "Q (A) x", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"},
            r"never offers choice \(B\)",
        ),
    ],
)
def test_user_behaviour_files_are_validated(tmp_path, row, message):
    good = {"question": "Q (A) x (B) y", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(LayerdriftError, match=message):
        load_behaviour_set(path)


def test_held_out_items_keep_the_letter_balance():
    letters = list("ABBAABABBA")
    train, held = balanced_split(letters, 4)
    assert sorted(train + held) == list(range(10)) and len(held) == 4
    assert [letters[i] for i in held].count("A") == 2 and [letters[i] for i in train].count("A") == 3
    assert held == [6, 7, 8, 9]  # taken from the end
    assert balanced_split(letters, 0) == (list(range(10)), [])
    assert balanced_split(list("AAAB"), 2)[1] == [2, 3]


def test_steering_helpers():
    assert auto_steering_layers(30) == [8, 12, 18, 22] and auto_steering_layers(3) == [1, 2]
    np.testing.assert_allclose(p_matching(np.array([[0.0, 0.0], [5.0, 0.0]])), [0.5, 1 / (1 + np.exp(-5))])


def planted_config(tmp_path, model, vocab_file, items_path, **behaviour):
    """The planted model and its copy, steered at every block with 4 items."""
    behaviour = {
        "sets": [str(items_path)],
        "steering_items": 4,
        "steering_layers": [0, 1, 2],
        "steering_scale": 2.0,
        "batch_size": 5,
        **behaviour,
    }
    variants = {"planted": model, "copy": model}
    return make_config(tmp_path / "run", variants, vocab_file, name="planted", capture={}, behaviour=behaviour)


def test_planted_direction_is_recovered_and_steering_moves_the_answer(tiny_model_planted, vocab_file, tmp_path):
    from layerdrift import run

    # In this set the behaviour-matching answer is always (A): the model's A-vs-B axis is the behaviour direction.
    topics = [
        "love",
        "justice",
        "France",
        "Paris",
        "electron",
        "nurse",
        "teenager",
        "entropy",
        "South Korea",
        "photosynthesis",
        "is",
        "of",
    ]
    rows = [
        {
            "question": f"The concept of {t} is\n (A) yes\n (B) no",
            "answer_matching_behavior": "(A)",
            "answer_not_matching_behavior": "(B)",
        }
        for t in topics
    ]
    items = tmp_path / "planted-a.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(planted_config(tmp_path, tiny_model_planted, vocab_file, items), quiet=True)

    vec = result.arrays["behaviour/vectors"]["planted/planted-a"]
    assert vec.shape == (5, 32)  # embedding, three blocks, final norm
    cos = layerwise_cosine(vec[:4], np.tile(planted_direction(), (4, 1)))
    assert np.all(cos > 0.99), cos  # the final norm rescales per coordinate, so only the residual points are compared
    np.testing.assert_allclose(vec[0], 2 * planted_direction(), atol=1e-5)  # embedding: exactly e(A) - e(B)

    tables = result.tables
    same = tables["behaviour_cosine"]
    np.testing.assert_allclose(same["cosine"], 1.0, atol=1e-6)  # a variant and its copy agree at every layer
    steer = tables["behaviour_steering"].query("variant == 'planted'")
    assert set(steer["block"]) == {0, 1, 2} and (steer["n_items"] == 4).all()
    for block, group in steer.groupby("block"):
        p = group.set_index("scale")["p_matching"]
        assert p[2.0] > p[0.0] > p[-2.0], (block, p.to_dict())
    cross = tables["behaviour_cross"].query("variant == 'planted' and layer_a == layer_b")
    np.testing.assert_allclose(cross["cosine"], 1.0, atol=1e-9)
    pca = tables["behaviour_pca"]
    assert len(pca) == 2 * 5 and pca["explained_pc1"].iloc[0] > 0.9  # all vectors point one way
    # a planted direction is as reliable as a direction gets, in both copies, and a copy never leaves the band
    rel = tables["behaviour_reliability"].query("label != 'final'")
    assert len(rel) == 2 * 4 and (rel["low"] > 0.99).all()
    half = tables["behaviour_half_cosine"]
    np.testing.assert_allclose(half["mean"], 1.0, atol=1e-6)
    assert any("fall below both variants' split-half band at 0/3 blocks" in f for f in result.findings())
    # each steered block moves the answer both ways with CIs that exclude no effect: the verdict names them
    assert (steer["shift_ci_low"] <= steer["shift"]).all() and (steer["shift"] <= steer["shift_ci_high"]).all()
    summary = next(v for k, v in result.summaries().items() if k.startswith("Steering check"))
    verdicts = dict(zip(summary["variant"], summary["verdict"]))
    reliable = [
        b
        for b, g in steer.groupby("block")
        if g.set_index("scale")["shift_ci_low"][2.0] > 0 and g.set_index("scale")["shift_ci_high"][-2.0] < 0
    ]
    expected = (
        f"steers at blocks {', '.join(map(str, reliable))}" if reliable else "no reliable steering at these blocks"
    )
    assert verdicts["planted"] == expected


def test_split_half_reliability_of_identical_and_random_items():
    from layerdrift.analyses.vectors import split_half_cosines

    rng = np.random.default_rng(0)
    one = np.tile(rng.normal(size=(3, 1, 256)), (1, 20, 1)) + 1e-3 * rng.normal(size=(3, 20, 256))
    noise = rng.normal(size=(3, 20, 256))
    within, between = split_half_cosines({"same": one, "noise": noise, "copy": one.copy()}, n_splits=200)
    assert within["same"].shape == (200, 3) and (within["same"] > 0.999).all()
    assert abs(within["noise"].mean()) < 0.02 and within["noise"].std() < 0.15  # random directions: about 0
    np.testing.assert_allclose(between[("same", "copy")], within["same"])  # a copy is read like the variant itself
    assert abs(between[("same", "noise")].mean()) < 0.02


def test_answer_letter_must_end_the_prompt(tiny_model, vocab_file, tmp_path):
    """A tokenizer that appends EOS would move the capture off the letter: refused, naming the item."""
    import shutil

    from layerdrift import run

    model = tmp_path / "eos-model"
    shutil.copytree(tiny_model, model)
    tok = json.loads((model / "tokenizer.json").read_text())
    eos = tok["post_processor"]["special_tokens"]["<s>"] | {"id": "</s>", "ids": [2], "tokens": ["</s>"]}
    tok["post_processor"]["special_tokens"]["</s>"] = eos
    tok["post_processor"]["single"].append({"SpecialToken": {"id": "</s>", "type_id": 0}})
    (model / "tokenizer.json").write_text(json.dumps(tok))
    items = tmp_path / "set.jsonl"
    items.write_text(
        "".join(
            json.dumps(
                {
                    "question": f"Q{i} (A) x (B) y",
                    "answer_matching_behavior": "(A)",
                    "answer_not_matching_behavior": "(B)",
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    with pytest.raises(
        LayerdriftError, match=r"item 1: in variant 'planted' the last token is '</s>', not the answer letter 'A'"
    ):
        run(planted_config(tmp_path, model, vocab_file, items, steering_items=0), quiet=True)
