"""Trajectory statistics and persistent homology on synthetic data, and a tiny-model run with a fine-tuned series."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import CHROMIUM, launch_chromium, served_dashboard

from layerdrift.analyses.topology import (
    bottleneck_distance,
    diagram_summary,
    lifetimes,
    pairwise_euclidean,
    persistent_entropy,
    rips_diagrams,
    wasserstein_distance,
)
from layerdrift.analyses.trajectory import (
    centre_of_mass,
    checkpoint_drift_matrix,
    concentration_test,
    early_concentration,
    lead_lag,
    path_velocities,
)
from layerdrift.errors import LayerdriftError


def noisy_circle(n: int, d: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    basis = np.linalg.qr(rng.standard_normal((d, 2)))[0]
    return np.c_[np.cos(t), np.sin(t)] @ basis.T + noise * rng.standard_normal((n, d)) / np.sqrt(d)


@pytest.mark.parametrize("engine", ["giotto-ph", "ripser"])
def test_noisy_circle_has_exactly_one_long_h1_bar(engine):
    x = noisy_circle(160, 640, 0.1, seed=0)
    h0, h1 = rips_diagrams(pairwise_euclidean(x), 1, engine)
    life = np.sort(lifetimes(h1))[::-1]
    assert life[0] > 1.0 and life[1] < 0.15 * life[0]  # one loop; every other bar is noise
    assert len(h0) == 159  # n - 1 finite H0 bars: everything merges into one component
    blob = np.random.default_rng(1).standard_normal((160, 640)) / np.sqrt(640)  # no loop at all
    assert np.sort(lifetimes(rips_diagrams(pairwise_euclidean(blob), 1, engine)[1]))[-1] < 0.3


def test_engines_agree_and_distances_match_scipy():
    from scipy.spatial.distance import cdist

    x = noisy_circle(60, 30, 0.3, seed=2)
    assert np.allclose(pairwise_euclidean(x), cdist(x, x), atol=1e-9)
    a, b = rips_diagrams(pairwise_euclidean(x), 1, "giotto-ph"), rips_diagrams(pairwise_euclidean(x), 1, "ripser")
    for da, db in zip(a, b):
        assert wasserstein_distance(da, db) < 1e-5


def _brute(a: np.ndarray, b: np.ndarray, order: float | None) -> float:
    """Every matching of a and b with diagonal copies, the obvious way (tiny diagrams only)."""
    pts_a = [tuple(p) for p in a] + [None] * len(b)
    pts_b = [tuple(p) for p in b] + [None] * len(a)

    def cost(p, q):
        if p is None and q is None:
            return 0.0
        if p is None:
            return (q[1] - q[0]) / 2
        if q is None:
            return (p[1] - p[0]) / 2
        return max(abs(p[0] - q[0]), abs(p[1] - q[1]))

    best = np.inf
    for perm in itertools.permutations(range(len(pts_b))):
        costs = [cost(pts_a[i], pts_b[j]) for i, j in enumerate(perm)]
        value = max(costs) if order is None else sum(c**order for c in costs) ** (1 / order)
        best = min(best, value)
    return best


def test_diagram_distances_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = np.sort(rng.uniform(0, 1, (rng.integers(0, 4), 2)), axis=1)
        b = np.sort(rng.uniform(0, 1, (rng.integers(1, 4), 2)), axis=1)
        assert wasserstein_distance(a, b) == pytest.approx(_brute(a, b, 2.0), abs=1e-9)
        assert wasserstein_distance(a, b, order=1) == pytest.approx(_brute(a, b, 1.0), abs=1e-9)
        assert bottleneck_distance(a, b) == pytest.approx(_brute(a, b, None), abs=1e-9)


def test_wasserstein_zero_for_identical_and_symmetric():
    rng = np.random.default_rng(3)
    a = np.sort(rng.uniform(0, 2, (40, 2)), axis=1)
    b = np.sort(rng.uniform(0, 2, (25, 2)), axis=1)
    assert wasserstein_distance(a, a) == 0.0 and bottleneck_distance(a, a) == 0.0
    assert wasserstein_distance(a, b) == pytest.approx(wasserstein_distance(b, a), rel=1e-12)
    assert bottleneck_distance(a, b) == pytest.approx(bottleneck_distance(b, a), rel=1e-12)
    assert wasserstein_distance(a, b) > 0 and bottleneck_distance(a, b) <= wasserstein_distance(a, b)
    # one extra bar of lifetime 2, far from the others, costs exactly its distance to the diagonal, 1
    sparse = np.array([[0.0, 0.1], [5.0, 5.2]])
    assert wasserstein_distance(sparse, np.vstack([sparse, [[10.0, 12.0]]])) == pytest.approx(1.0)
    assert bottleneck_distance(sparse, np.vstack([sparse, [[10.0, 12.0]]])) == pytest.approx(1.0)


def test_diagram_summaries_known_cases():
    d = np.array([[0.0, 1.0], [0.0, 1.0], [0.5, 2.5]])
    s = diagram_summary(d)
    assert s["bars"] == 3 and s["total_persistence"] == pytest.approx(4.0) and s["lifetime_max"] == pytest.approx(2.0)
    p = np.array([0.25, 0.25, 0.5])
    assert persistent_entropy(d) == pytest.approx(-(p * np.log(p)).sum())
    assert persistent_entropy(np.array([[0.0, 1.0]] * 8)) == pytest.approx(np.log(8))  # equal bars: maximal entropy
    assert diagram_summary(np.zeros((0, 2)))["bars"] == 0


def _series(velocities: list[float], d: int = 64, n: int = 40, seed: int = 0) -> np.ndarray:
    """Checkpoints moving by the given step sizes, each along a fresh random direction (a path in concept space)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d))
    steps = [base]
    for v in velocities:
        steps.append(steps[-1] + v * rng.standard_normal((n, d)))
    return np.stack(steps)


def test_concentration_detects_early_change_and_not_flat():
    early = checkpoint_drift_matrix(_series([1.0, 0.8, 0.6, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02]))
    flat = checkpoint_drift_matrix(_series([0.3] * 9, seed=1))
    te, tf = concentration_test(early, 2000, seed=0), concentration_test(flat, 2000, seed=0)
    assert te.c > 0.8 and te.p < 0.05
    assert tf.p > 0.05 and abs(float(tf.c) - tf.expected) < 0.12
    assert te.expected == pytest.approx(3 / 9)
    # the band is the null distribution of the velocity at each interval: the same at every interval (orderings are
    # exchangeable), and the settled late steps sit below it
    v = path_velocities(early)
    assert np.ptp(te.band[:, 1]) < 0.2 * te.band[:, 1].mean() and v[-1] < te.band[-1, 0]
    # leading axes share the orderings: stacking the two gives the same answers
    both = concentration_test(np.stack([early, flat]), 2000, seed=0)
    assert both.p[0] == pytest.approx(float(te.p)) and both.p[1] == pytest.approx(float(tf.p))


def test_concentration_statistic_by_hand():
    assert early_concentration(np.array([3.0, 1.0, 1.0, 1.0, 1.0, 1.0])) == pytest.approx(4 / 8)
    assert np.isnan(early_concentration(np.zeros(4)))
    x = _series([0.5, 0.5, 0.5])
    d = checkpoint_drift_matrix(x)
    slow = np.array(
        [
            [
                np.mean([1 - np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(x[i], x[j])])
                for j in range(4)
            ]
            for i in range(4)
        ]
    )
    assert np.allclose(d, slow, atol=1e-10) and np.allclose(d, d.T) and np.all(np.diag(d) == 0)


def test_centre_of_mass_by_hand():
    assert centre_of_mass(np.array([1.0, 0.0, 0.0])) == 0.0
    assert centre_of_mass(np.array([0.0, 1.0, 3.0])) == pytest.approx((1 * 1 + 2 * 3) / 4)
    assert np.isnan(centre_of_mass(np.zeros(3)))


def test_lead_lag_recovers_a_planted_lag_and_its_sign():
    """Representation moves in the first interval and behaviour three intervals later, prompt by prompt: a lag of 3
    (behaviour lags), significant; swapped, the same lag with the other sign; identical profiles, no lag at all."""
    rng = np.random.default_rng(0)
    n, m = 40, 6
    early = np.abs(rng.normal(0.02, 0.01, (n, m)))
    late = early.copy()
    early[:, 0] += 1.0
    late[:, 3] += 1.0
    ll = lead_lag(early, late, n_perm=2000, n_boot=500, seed=0)
    truth = np.mean(centre_of_mass(late) - centre_of_mass(early))
    assert ll.lag == pytest.approx(truth) and 2.5 < ll.lag < 3.0 and ll.low < ll.lag < ll.high
    assert ll.p == pytest.approx(1 / 2001) and ll.n == n
    back = lead_lag(late, early, n_perm=2000, n_boot=500, seed=0)
    assert back.lag == pytest.approx(-ll.lag) and back.p == ll.p
    same = lead_lag(early, early, n_perm=500, n_boot=100, seed=0)
    assert same.lag == 0 and same.p == 1.0
    # a prompt where one velocity never moved has no centre: left out, not counted as lag 0
    early[0] = 0.0
    assert lead_lag(early, late, n_perm=200, n_boot=100).n == n - 1


def test_lead_lag_p_value_agrees_with_exact_enumeration_of_the_signs():
    """With 10 prompts every one of the 2^10 sign patterns can be enumerated: the Monte Carlo p approaches it."""
    rng = np.random.default_rng(1)
    first, second = rng.random((10, 5)), rng.random((10, 5))
    second[:, -1] += 0.1  # a weak lag
    lags = centre_of_mass(second) - centre_of_mass(first)
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=10)))
    exact = np.mean(np.abs(signs @ lags) >= abs(lags.sum()) - 1e-12)
    got = lead_lag(first, second, n_perm=20000, n_boot=100, seed=0)
    assert 0.01 < exact < 0.9 and got.p == pytest.approx(exact, abs=0.015)


def test_series_run_tables(series_run):
    t = series_run.tables
    traj = t["trajectory"]
    assert sorted(traj["step"].unique()) == [0, 1, 2, 4]
    start = traj[traj.step == 0]
    assert np.allclose(start.drift_start, 0, atol=1e-6) and np.allclose(start.jaccard_start, 1)
    assert np.allclose(start[start.label != "embed"].cka_start, 1, atol=1e-6)
    assert (
        start[start.label == "embed"].cka_start.isna().all()
    )  # one shared last token ("is"): no variance, CKA undefined
    # the embedding is untouched by LoRA on the projections; later points move
    assert np.allclose(traj[traj.label == "embed"].drift_start, 0, atol=1e-6)
    assert traj[(traj.step == 4) & (traj.label == "final")].drift_start.iloc[0] > 0
    # headline analyses compare the base with the series' last checkpoint only
    assert set(series_run.meta["variants"]) == {"base", "floor", "memo.step4"}
    conc = t["concentration"]
    half = conc[(conc.metric == "drift") & (conc.label == "final")]["half_distance_step"].iloc[0]
    assert 0 < half <= 4
    assert set(conc.metric) == {"drift", "wasserstein_h0", "wasserstein_h1"} and "all" in set(conc.label)
    moved = conc[conc.label != "embed"]
    assert moved.p.between(0, 1).all() and moved.c.between(0, 1).all()
    assert conc[conc.label == "embed"].c.isna().all()  # nothing moved there: C is undefined, not 0
    band = t["velocity_band"]
    assert len(band[(band.metric == "drift") & (band.label == "all")]) == 3
    topo = t["topology"]
    assert set(topo.dim) == {0, 1} and topo.layer.nunique() == 3
    h0 = topo[(topo.dim == 0) & (topo.stat == "bars")]
    assert (h0[h0.label != "embed"]["mean"] == 7).all()  # 8 distinct points: 7 finite H0 bars
    assert (h0[h0.label == "embed"]["mean"] == 0).all()  # one shared last token: a single point, no bars
    dist = t["topology_distances"]
    assert set(dist.kind) == {"consecutive", "from_start", "pair", "floor"}
    floor = dist[dist.kind == "floor"]
    assert set(zip(floor.a, floor.b)) == {("base", "floor")} and (floor[floor.label != "embed"].wasserstein > 0).all()
    emb = dist[(dist.label == "embed")]
    assert np.allclose(emb.wasserstein, 0) and np.allclose(emb.bottleneck, 0)  # identical states: identical diagrams
    proj = t["trajectory_projection"]
    assert set(proj.variant) == {"base", "memo.step0", "memo.step1", "memo.step2", "memo.step4"}
    check_velocities_against_the_floor(series_run, band, conc, dist)


def check_velocities_against_the_floor(run, band, conc, dist):
    """The representation velocity's floor is the reference's drift from its noise-floor variant at that point, and
    the topological velocity's is their W2 distance (the same floor logic for both)."""
    store = run.store
    drift = band[band.metric == "drift"]
    for label, hook in zip(run.meta["labels"], store.residual_points("base", "concepts")):
        a, b = (store.activations(v, "concepts", hook, "last").astype(np.float64) for v in ("base", "floor"))
        direct = np.mean(1 - (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300))
        assert np.allclose(drift[drift.label == label].floor, direct, rtol=1e-9, atol=1e-15)
    assert (band.above_floor == (band.velocity > band.floor)).all()
    counted = band.groupby(["metric", "label"]).above_floor.sum()
    assert (
        conc.set_index(["metric", "label"]).intervals_above_floor
        == counted.reindex(conc.set_index(["metric", "label"]).index)
    ).all()
    w1 = band[(band.metric == "wasserstein_h1") & (band.label == "final")].floor.iloc[0]
    floor_row = dist[(dist.kind == "floor") & (dist.dim == 1) & (dist.label == "final")]
    assert w1 == pytest.approx(floor_row.wasserstein.iloc[0])
    drift_all = conc[(conc.metric == "drift") & (conc.label == "all")].iloc[0]
    assert any(
        f.startswith("Series memo: representation drift velocity")
        and f"{drift_all.intervals_above_floor} of 3 checkpoint intervals move more than the noise floor" in f
        for f in run.findings()
    )


def test_series_run_reopens_without_recomputing(series_run):
    from layerdrift import run
    from layerdrift.workbench.config import config_from_dict

    cfg = config_from_dict(series_run.store.manifest["config"])
    pointer = series_run.store.root / "results" / "trajectory.json"  # the trajectory result set's record
    mtime = pointer.stat().st_mtime_ns
    again = run(cfg, quiet=True)
    assert pointer.stat().st_mtime_ns == mtime
    assert again.tables["concentration"].equals(series_run.tables["concentration"])


def test_series_run_figures_and_report(series_run):
    from layerdrift.dashboards.trajectory import figures

    figs = figures(series_run)
    assert {
        "trajectory_drift_start",
        "trajectory_velocity",
        "trajectory_concentration",
        "persistence_diagrams_final",
        "topology_pair_distances",
        "trajectory_umap",
    } <= set(figs)
    velocity = figs["trajectory_velocity"]
    drift_line = next(tr for tr in velocity.data if tr.name and tr.name.startswith("memo") and tr.xaxis == "x")
    band = series_run.tables["velocity_band"]
    expected = band[(band.metric == "drift") & (band.label == "all")].sort_values("interval")["velocity"].to_numpy()
    assert np.allclose(np.asarray(drift_line.y, dtype=float), expected)  # the figure draws the table's numbers
    heat = figs["trajectory_drift_start"].data[0]
    assert list(heat.x) == ["0", "1", "2", "4"]
    summaries = series_run.summaries()
    frames = {
        key: next(f for title, f in summaries.items() if title.startswith(start))
        for key, start in (("trajectory", "Checkpoint series"), ("topology", "Topology between"))
    }
    assert (
        list(frames["trajectory"]["series"]) == ["memo"]
        and frames["trajectory"]["last step"].iloc[0] == 4
        and 0 < frames["trajectory"]["half of it by step"].iloc[0] <= 4
    )
    assert list(frames["topology"]["pair"]) == ["base→memo.step4", "base→floor (floor)"]
    index = (series_run.report.parent / "index.html").read_text()
    assert "Checkpoint series" in index and "trajectory_velocity.html" in index


def test_trajectory_view_follows_the_checkpoint_slider(series_run):
    from layerdrift.dashboards.trajectory import TrajectoryView

    view = TrajectoryView(series_run.tables, series_run.meta["terms"])
    assert view.slider_options() == {"step 0": 0, "step 1": 1, "step 2": 2, "step 4": 3}
    assert view.variant == "memo.step0"
    view.checkpoint = 3
    assert view.variant == "memo.step4"
    marker = view.heatmap().layout.shapes[-1]
    assert (marker.x0, marker.x1) == (2.5, 3.5)  # the fourth column of the map: step 4
    profile = view.profile()
    traj = series_run.tables["trajectory"]
    expected = traj[(traj.checkpoint == 3)].sort_values("layer")["drift_start"].to_numpy()
    assert np.allclose(np.asarray(profile.data[0].y, dtype=float), expected)
    cloud = view.cloud()
    here = cloud.data[-1]
    proj = series_run.tables["trajectory_projection"]
    assert np.allclose(np.asarray(here.x, dtype=float), proj[proj.variant == "memo.step4"]["x"].to_numpy())
    assert list(here.text) == series_run.meta["terms"]
    diagram = view.diagram()
    assert diagram.layout.annotations[0].text == "memo.step0" and diagram.layout.annotations[1].text == "memo.step4"


def test_trajectory_tab_in_headless_chromium(series_run, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with served_dashboard(series_run.store.root) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/")
        page.wait_for_selector(".js-plotly-plot", timeout=60000)
        page.get_by_text("Trajectories", exact=True).click()
        page.get_by_text("UMAP across checkpoints (memo, point final): memo.step0").wait_for(timeout=20000)
        handle = page.locator(".checkpoint-slider .noUi-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("ArrowRight")
        page.get_by_text("UMAP across checkpoints (memo, point final): memo.step4").wait_for(timeout=20000)
        page.get_by_text("checkpoint 4 of every series (memo: step 4)").wait_for(timeout=20000)
        page.screenshot(path=str(tmp_path / "trajectories.png"), full_page=True)
        assert (tmp_path / "trajectories.png").stat().st_size > 20000
        browser.close()


def test_topology_points_skip_the_shared_last_token_embedding():
    from layerdrift.workbench.config import TrajectorySpec
    from layerdrift.workbench.experiments.trajectory import topology_points

    assert topology_points(TrajectorySpec(topology_layers=5), 20) == [
        1,
        6,
        10,
        14,
        19,
    ]  # Gemma 3 270M: blocks 0, 5, 9, 13 and the final norm
    assert topology_points(TrajectorySpec(topology_layers=[0, 3]), 20) == [0, 3]
    with pytest.raises(LayerdriftError, match="outside 0..19"):
        topology_points(TrajectorySpec(topology_layers=[20]), 20)


def test_half_distance_step_interpolates_and_ignores_spacing():
    from layerdrift.analyses.trajectory import half_distance_step

    steps = np.array([0, 1, 2, 4, 8, 16, 32])
    linear = steps / 32.0  # distance grows evenly with training steps
    assert half_distance_step(linear, steps) == pytest.approx(16.0)
    saturating = np.array([0, 0.5, 0.8, 0.9, 1.0, 1.0, 1.0])
    assert half_distance_step(saturating, steps) == pytest.approx(1.0)
    assert half_distance_step(np.array([0, 0.2, 0.6, 1.0]), np.array([0, 10, 20, 30])) == pytest.approx(17.5)
    both = half_distance_step(np.stack([linear, saturating]), steps)
    assert both == pytest.approx([16.0, 1.0])
    assert np.isnan(half_distance_step(np.zeros(4), np.arange(4)))


def test_topology_between_variants_of_different_depth_is_one_clear_error(tiny_model, tmp_path):
    from conftest import VOCAB_TEXT, build_tiny_llama, make_config

    from layerdrift import run

    shallow = build_tiny_llama(tmp_path / "shallow", layers=2)
    (tmp_path / "vocab.tsv").write_text(VOCAB_TEXT, encoding="utf-8")
    cfg = make_config(
        tmp_path / "run",
        {"deep": {"source": str(tiny_model)}, "shallow": shallow},
        tmp_path / "vocab.tsv",
        name="depths",
        capture={},
        analysis={"umap_neighbors": 5},
        trajectory={"subsamples": 2, "subsample_size": 8, "n_perm": 100},
    )
    with pytest.raises(LayerdriftError, match="'deep' has 5 residual points and 'shallow' has 4"):
        run(cfg, quiet=True)
