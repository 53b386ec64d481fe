"""SMDS on synthetic data (planted circles, ellipses, shared and rotated subspaces), probe sets and their token
alignment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import floor_of, make_config

from layerdrift.analyses.manifold import (
    classical_mds,
    fold_ids,
    ideal_distances,
    scale_normalised_stress,
    smds_cell_reference,
    smds_cells,
    subspace_similarity,
)
from layerdrift.concepts.probes import BUILTIN_PROBES, load_probe_set, ordinal
from layerdrift.errors import LayerdriftError

N, D = 200, 32


def day_labels(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 365, n).astype(float)


def plant(labels: np.ndarray, basis: np.ndarray, radius=(8.0, 8.0), noise: float = 1.0, seed: int = 1) -> np.ndarray:
    """Noise plus a circle (or ellipse) of the labels' angle in the 2-D subspace spanned by ``basis`` (d, 2)."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * labels / 365
    circle = np.stack([radius[0] * np.cos(angle), radius[1] * np.sin(angle)], axis=1)
    return noise * rng.normal(size=(len(labels), basis.shape[0])) + circle @ basis.T


def random_basis(seed: int, d: int = D) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, 2)))[0]


def test_circular_label_distance_is_periodic_and_shapes_have_known_values():
    y = np.array([0.0, 1.0, 364.0, 182.5, 365.0])
    d = ideal_distances(y, "circular", 365)
    assert d[0, 2] == pytest.approx(d[0, 1]) and d[0, 4] == pytest.approx(
        0.0, abs=1e-12
    )  # 31 Dec sits next to 1 Jan; a full period is no distance
    assert (
        d[0, 3] == pytest.approx(2.0) and np.allclose(d, d.T) and d.max() <= 2.0 + 1e-12
    )  # the chord of half a period is the diameter
    steps = ideal_distances(np.array([0.0, 11.0, 6.0]), "discrete_circular", 12)
    assert steps[0, 1] == 1 and steps[0, 2] == 6 and steps[1, 2] == 5
    assert ideal_distances(np.array([1.0, 4.0]), "linear")[0, 1] == 3
    assert ideal_distances(np.array([1.0, 1.0, 2.0]), "cluster").tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    with pytest.raises(ValueError, match="period"):
        ideal_distances(y, "circular")


def test_classical_mds_recovers_a_circle_and_stress_is_scale_free():
    labels = np.arange(0, 365, 5.0)
    y = classical_mds(ideal_distances(labels, "circular", 365), 2)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-8)  # the unit circle, up to rotation
    a, b = np.random.default_rng(0).random(50), np.random.default_rng(1).random(50)
    assert scale_normalised_stress(a, 7.5 * a) == pytest.approx(0.0, abs=1e-12)
    assert scale_normalised_stress(a, b) == pytest.approx(scale_normalised_stress(a, 3 * b))


def test_a_planted_circle_scores_high_at_its_cell_and_near_chance_elsewhere():
    labels = day_labels()
    rng = np.random.default_rng(5)
    cells = rng.normal(size=(4, N, D))
    cells[1] = plant(labels, random_basis(2), radius=(20.0, 20.0))
    res = smds_cells(cells, labels, "circular", 365)
    assert res.score[1] > 0.9
    others = np.delete(np.arange(4), 1)
    assert np.all(np.abs(res.score[others] - res.score_chance[others]) < 0.05), (res.score, res.score_chance)
    assert np.all(res.score_chance < 0.5)
    assert res.predicted.shape == (4, N, 2) and res.maps.shape == (4, D, 2)


def test_orthonormal_map_matches_the_free_map_for_a_rigid_circle_and_drops_for_an_ellipse():
    labels = day_labels()
    basis = random_basis(3)
    cells = np.stack([plant(labels, basis, radius=(10.0, 10.0)), plant(labels, basis, radius=(30.0, 3.0))])
    res = smds_cells(cells, labels, "circular", 365)
    assert abs(res.score_orthonormal[0] - res.score[0]) < 0.02 and res.score[0] > 0.85
    assert res.score_orthonormal[1] < res.score[1] - 0.1  # a stretched circle needs a non-rigid map


def test_reuse_recovers_a_shared_subspace_and_fails_on_a_rotated_one():
    labels = day_labels()
    q = np.linalg.qr(np.random.default_rng(4).normal(size=(D, 4)))[0]
    shared, rotated = q[:, :2], q[:, 2:]  # the circle turned into an orthogonal plane
    cells = np.stack([plant(labels, shared, seed=1), plant(labels, shared, seed=2), plant(labels, rotated, seed=3)])
    res = smds_cells(cells, labels, "circular", 365, reuse_source=np.zeros(3, dtype=int))
    assert res.score_reuse is not None
    assert res.score_reuse[0] == pytest.approx(res.score[0])  # a cell's own map
    assert res.score_reuse[1] > 0.85 and abs(res.score_reuse[1] - res.score[1]) < 0.03
    assert res.score[2] > 0.85 and res.score_reuse[2] < res.score_chance[2] + 0.1
    sim = subspace_similarity(res.maps)
    assert sim[0, 1] > sim[0, 2] and np.allclose(np.diag(sim), 1.0)


def test_cross_validation_never_scores_on_training_rows():
    folds = fold_ids(N, 5, seed=0)
    assert sorted(np.bincount(folds)) == [40] * 5
    # pure noise with more features than rows: a map fitted and scored on its own rows would look perfect
    rng = np.random.default_rng(0)
    noise, labels = rng.normal(size=(1, N, 400)), day_labels()
    res = smds_cells(noise, labels, "circular", 365, ridge=1e-4)
    assert res.score[0] < res.score_chance[0] + 0.05
    # a row's held-out prediction does not depend on its own label: distances within its test fold stay put
    x = plant(labels, random_basis(1))[None]
    changed = labels.copy()
    changed[7] = (changed[7] + 180) % 365
    a, b = smds_cells(x, labels, "circular", 365).predicted[0], smds_cells(x, changed, "circular", 365).predicted[0]
    rows = np.flatnonzero(folds == folds[7])
    dist = lambda p: np.linalg.norm(p[rows][:, None] - p[rows][None], axis=-1)
    np.testing.assert_allclose(dist(a), dist(b), atol=1e-4)


@pytest.mark.parametrize(
    "shape,period", [("circular", 365.0), ("discrete_circular", 12.0), ("linear", None), ("cluster", None)]
)
def test_batched_cells_agree_with_the_slow_per_cell_reference(shape, period):
    rng = np.random.default_rng(2)
    labels = (
        day_labels(120) if shape == "circular" else rng.integers(0, 12 if shape != "cluster" else 4, 120).astype(float)
    )
    basis = random_basis(6, 24)
    signal = (
        np.stack([labels, labels**0.5], axis=1)
        if shape in ("linear", "cluster")
        else np.stack([np.cos(labels), np.sin(labels)], axis=1)
    )
    cells = np.stack([rng.normal(size=(120, 24)) + 3 * signal @ basis.T, rng.normal(size=(120, 24))])
    res = smds_cells(cells, labels, shape, period, folds=4, ridge=0.3)
    for i in range(2):
        free, ortho = smds_cell_reference(cells[i], labels, shape, period, folds=4, ridge=0.3)
        assert res.score[i] == pytest.approx(free, abs=2e-4) and res.score_orthonormal[i] == pytest.approx(
            ortho, abs=2e-4
        )


def test_constant_cells_are_not_scored():
    labels = day_labels()
    cells = np.stack([np.ones((N, D)), plant(labels, random_basis(1))])
    res = smds_cells(cells, labels, "circular", 365)
    assert np.isnan(res.score[0]) and np.isfinite(res.score[1])


# ---- probe sets and alignment ----------------------------------------------------------------


def test_birthday_labels_are_days_of_the_year_and_generation_is_deterministic():
    ps = load_probe_set("birthday", 300, seed=0)
    assert len(ps.items) == 300 and ps.shape == "circular" and ps.period == 365
    assert (
        ps.prompts()
        == load_probe_set("birthday", 300, seed=0).prompts()
        != load_probe_set("birthday", 300, seed=1).prompts()
    )
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    starts = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])
    for item in ps.items:
        day = int(item.fields["day"][:-2])
        assert item.fields["day"] == ordinal(day) and starts[months.index(item.fields["month"])] + day - 1 == item.label
    text = ps.prompts()[0]
    assert text.endswith("had a party on her birthday.") and "plays volleyball" in text
    assert [ordinal(d) for d in (1, 2, 3, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "31st",
    ]
    for name in BUILTIN_PROBES:
        s = load_probe_set(name, 50)
        assert set(s.landmarks) == {"source", "destination", "distractor"} and len(np.unique(s.labels)) > 3


def write_probe_file(path, **changes):
    data = {
        "name": "seasons",
        "template": "In {season} the {thing} is nice. I like the {thing} then.",
        "shape": "discrete_circular",
        "period": 4,
        "landmarks": {"source": "{season}", "destination": "then"},
        "items": [
            {"fields": {"season": s, "thing": t}, "label": i}
            for i, s in enumerate(["spring", "summer", "autumn", "winter"])
            for t in ("weather", "garden", "park")
        ],
    }
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_user_probe_files_are_validated(tmp_path):
    ok = load_probe_set(str(write_probe_file(tmp_path / "ok.json")))
    assert ok.name == "seasons" and len(ok.items) == 12 and ok.labels[3] == 1
    cases = {
        "no_period.json": ({"period": None}, "needs a positive 'period'"),
        "bad_landmark.json": (
            {"landmarks": {"source": "{season}", "destination": "tomorrow"}},
            "neither a {field} nor a piece",
        ),
        "no_source.json": ({"landmarks": {"destination": "then"}}, "must name a 'source'"),
        "bad_field.json": ({"landmarks": {"source": "{weather}"}}, "not in the template"),
        "few.json": ({"items": [{"fields": {"season": "spring", "thing": "x"}, "label": 0}] * 3}, "too few"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(LayerdriftError, match=message.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
            load_probe_set(str(write_probe_file(tmp_path / name, **change)))
    missing = write_probe_file(tmp_path / "missing.json")
    data = json.loads(missing.read_text())
    data["items"][4]["fields"].pop("thing")
    missing.write_text(json.dumps(data))
    with pytest.raises(LayerdriftError, match="item 5: no value for the field"):
        load_probe_set(str(missing))
    with pytest.raises(LayerdriftError, match="neither a built-in"):
        load_probe_set("birthdays")


def test_alignment_lines_up_landmarks_in_each_prompt(tiny_model):
    from transformers import AutoTokenizer

    from layerdrift.hooks.probe_alignment import align_probes

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ps = load_probe_set("birthday", 40)
    al = align_probes(tok, ps)
    assert len(al.kept) == 40 and not al.rejected and len(al.slots) == len(al.index[0]) == len(al.exact)
    assert al.slots[al.landmarks["source"]].startswith("{month}")
    for k, i in enumerate(al.kept):
        text = ps.prompts()[i]
        spans = tok(text, return_offsets_mapping=True)["offset_mapping"]
        month = ps.items[i].fields["month"]
        end = spans[
            al.index[k][al.landmarks["source"]] - (1 if tok.bos_token_id == al.ids[k][0] and spans[0] != (0, 0) else 0)
        ][1]
        assert text[:end].endswith(month[-1]) and text.find(month) < end <= text.find(month) + len(
            month
        )  # the month's last token
        dest = al.index[k][al.landmarks["destination"]]
        assert tok.decode(al.ids[k][: dest + 1]).endswith("birthday")
        assert al.index[k] == sorted(al.index[k])  # slots keep the token order


# ---- the experiment on tiny models -----------------------------------------------------------


def manifold_config(out, base, other, vocab, **manifold):
    """Base, an identical copy, another model and a bfloat16 floor of base; birthday and numbers probes, 48 prompts,
    4 folds."""
    return make_config(
        out,
        {"base": base, "same": base, "other": other, "floor": floor_of(base)},
        vocab,
        name="tiny-manifold",
        capture={},
        manifold={"sets": ["birthday", "numbers"], "n_prompts": 48, "folds": 4, **manifold},
    )


def test_manifold_run_on_tiny_models(tiny_model, tiny_model_tuned, vocab_file, tmp_path, monkeypatch):
    from layerdrift import run

    result = run(manifold_config(tmp_path / "run", tiny_model, tiny_model_tuned, vocab_file), quiet=True)
    scores = result.tables["manifold_scores"]
    assert set(scores["variant"]) == {"base", "same", "other", "floor"} and set(scores["set"]) == {
        "birthday",
        "numbers",
    }
    per = scores.groupby(["set", "variant"]).size()
    n_slots = scores[scores["variant"] == "base"].groupby("set")["slot"].nunique()
    assert (
        (per.unstack() == (n_slots * 5).to_numpy()[:, None]).all().all()
    )  # 5 residual points x slots, for every variant
    base = scores[scores["variant"] == "base"].sort_values(["set", "point", "slot"])
    same = scores[scores["variant"] == "same"].sort_values(["set", "point", "slot"])
    np.testing.assert_allclose(
        same["score"].to_numpy(), base["score"].to_numpy(), atol=1e-5, equal_nan=True
    )  # identical weights, identical maps
    # the month's last token (here a byte-level fragment such as 'y' of January / May / July) tells part of the date:
    # above chance from the embedding on
    src = base[(base["set"] == "birthday") & (base["landmark"] == "source")]
    assert (src["score"] > src["score_chance"] + 0.08).all()
    assert set(base["landmark"]) == {"", "source", "destination", "distractor"}
    proj = result.arrays["manifold/projections"]
    assert (
        proj["base/birthday"].shape == (5, n_slots["birthday"], 48, 2) and proj["base/numbers"].shape[-1] == 1
    )  # linear: one coordinate
    sim = result.tables["manifold_similarity"]
    assert np.allclose(sim[sim["slot_a"] == sim["slot_b"]]["similarity"].dropna(), 1.0, atol=1e-6)
    from layerdrift.workbench.experiments.manifold import manifold_summary

    summary = manifold_summary(scores)
    assert summary.set_index(["set", "variant"]).loc[("birthday", "same"), "max |Δ|"] < 1e-4
    check_cells_against_reference_and_floor(result, scores)
    # a second run reuses everything: no model is loaded again, same tables
    import layerdrift.workbench.models.loading as variants

    monkeypatch.setattr(variants, "load_variant", lambda *a, **k: pytest.fail("a cached manifold run loaded a model"))
    again = run(manifold_config(tmp_path / "run", tiny_model, tiny_model_tuned, vocab_file), quiet=True)
    assert again.tables["manifold_scores"].equals(scores)


def check_cells_against_reference_and_floor(result, scores):
    """Every cell's score difference, activation drift and noise-floor threshold, against direct computations."""
    key = ["set", "point", "slot"]
    by = {v: scores[scores["variant"] == v].sort_values(key).reset_index(drop=True) for v in scores["variant"].unique()}
    base, same, other, floor = by["base"], by["same"], by["other"], by["floor"]
    np.testing.assert_allclose(other["score_diff"], other["score"] - base["score"], equal_nan=True)
    np.testing.assert_allclose(other["floor_diff"], (floor["score"] - base["score"]).abs(), equal_nan=True)
    assert (other["beyond_floor"] == (other["score_diff"].abs() > other["floor_diff"])).all()
    assert base["floor_diff"].isna().all() and floor["floor_diff"].isna().all() and not floor["beyond_floor"].any()
    assert same["drift"].max() < 1e-9 and same["beyond_floor"].mean() < 0.05  # an identical copy stays in the floor
    assert 0 < floor["drift"].median() < other["drift"].median()
    store = result.store
    hook = store.manifest["captures"]["other/probe-birthday"]["residual_points"][3]
    a = store.activations("other", "probe-birthday", hook, "slots").astype(np.float64)[:, 2]
    b = store.activations("base", "probe-birthday", hook, "slots").astype(np.float64)[:, 2]
    direct = np.mean([1 - x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)])
    cell = other[(other["set"] == "birthday") & (other["point"] == 3) & (other["slot"] == 2)]
    assert cell["drift"].iloc[0] == pytest.approx(direct, rel=1e-9)
    assert any(f.startswith("other changes the 'birthday' manifold score by up to") for f in result.findings())


def test_a_score_change_is_read_against_the_floor_at_the_same_cell():
    """A loss of 0.4 where the floor moves 0.01 is beyond the floor; a loss of 0.5 where the floor moves 0.6 is not."""
    from layerdrift.workbench.experiments.manifold import variant_finding

    cells = pd.DataFrame(
        {
            "variant": "int8",
            "label": ["3", "4"],
            "slot_label": [" May", " party"],
            "score_diff": [-0.4, -0.5],
            "floor_diff": [0.01, 0.6],
            "drift": [0.002, 0.003],
            "floor": False,
        }
    )
    cells["beyond_floor"] = cells["score_diff"].abs() > cells["floor_diff"]
    text = variant_finding(cells, "birthday")
    assert "by up to -0.500 (at layer 4, token ' party', where its activations drift 0.003)" in text
    assert "1 of 2 cells differ by more than a noise-floor variant" in text
    assert "the largest such change is -0.400 at layer 3, token ' May' (floor |Δ| 0.010" in text
    within = variant_finding(cells.assign(floor_diff=[0.5, 0.6], beyond_floor=False), "birthday")
    assert within.endswith(
        "0 of 2 cells differ by more than a noise-floor variant does at the same cell: no change beyond the floor."
    )
    assert "no noise-floor variant" in variant_finding(cells.assign(floor_diff=np.nan, beyond_floor=False), "birthday")


def test_manifold_config_errors_before_anything_is_written(tiny_model, vocab_file, tmp_path):
    from layerdrift import run
    from layerdrift.workbench.config import config_from_dict

    with pytest.raises(LayerdriftError, match="manifold.variants names variant 'nf4'"):
        manifold_config(tmp_path / "a", tiny_model, tiny_model, vocab_file, variants=["nf4"])
    with pytest.raises(LayerdriftError, match="neither a built-in"):
        run(manifold_config(tmp_path / "b", tiny_model, tiny_model, vocab_file, sets=["birthdays"]), quiet=True)
    assert not (tmp_path / "b").exists()
    with pytest.raises(LayerdriftError, match="needs a period"):
        run(
            manifold_config(tmp_path / "c", tiny_model, tiny_model, vocab_file, sets=["numbers"], shape="circular"),
            quiet=True,
        )
    assert not (tmp_path / "c").exists()
    assert config_from_dict({"variants": [{"name": "a", "source": "x"}], "manifold": {}}).manifold.sets == ["birthday"]


def test_manifold_colour_scales_never_clip_a_cell():
    from layerdrift.dashboards.manifold import manifold_difference, manifold_heatmaps

    cells = [(p, s) for p in range(3) for s in range(2)]
    score = {"ref": [0.9] * 6, "int8": [0.9, 0.44, 0.8, 0.9, 0.95, 0.1]}  # a loss of 0.46 and a score of 0.1
    scores = pd.DataFrame(
        [
            {
                "set": "birthday",
                "variant": v,
                "point": p,
                "label": str(p),
                "slot": s,
                "slot_label": f" t{s}",
                "landmark": "",
                "score": score[v][i],
                "score_orthonormal": 0.2,
                "score_chance": 0.05,
                "shape": "circular",
                "n_prompts": 40,
            }
            for v in score
            for i, (p, s) in enumerate(cells)
        ]
    )
    diff = manifold_difference(scores, "birthday", "ref").data[0]
    assert np.nanmin(diff.z) == pytest.approx(-0.8) and diff.zmin <= -0.8 and diff.zmax == -diff.zmin
    maps = manifold_heatmaps(scores, "birthday").data
    assert maps[1].zmin <= 0.1 and maps[0].zmin == 0.3  # int8's 0.1 cell keeps its colour; 0.3 stays the usual floor
    gap = manifold_heatmaps(scores, "birthday", "rigid_gap").data
    assert gap[1].zmin <= -0.75 and gap[1].zmax >= 0.75  # orthonormal 0.2 vs a score of 0.95
