"""Trajectories along checkpoint series and persistent homology of every variant, from the captured final-token states.

Nothing here loads a model: it reads the prompt set's last-token residual points from the store.

Tables (Parquet in ``RUN/results``):
    trajectory            series x checkpoint x residual point: drift / CKA / Jaccard from step 0 and from the previous
                          checkpoint, effective rank (RankMe)
    concentration         early-concentration C and its permutation p-value, per series, metric and point (+ all points)
    velocity_band         velocity per interval with the 2.5 / 50 / 97.5 % band under random checkpoint orderings
    topology              per variant x topology layer x dimension: diagram summaries (mean and sd over subsamples)
    topology_distances    Wasserstein-2 and bottleneck distances (mean and sd over paired subsamples): consecutive
                          checkpoints, from step 0, every pair of headline variants (e.g. base vs NF4), and the
                          reference vs each noise-floor variant (kind "floor")
    persistence_diagrams  the bars of the first subsample (for figures)
    trajectory_projection one joint UMAP of every checkpoint and headline variant at one residual point
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from layerdrift.analyses.drift import drift_by_layer
from layerdrift.analyses.headline import SIGNIFICANCE
from layerdrift.analyses.neighbours import knn_jaccard
from layerdrift.analyses.projection import joint_umap
from layerdrift.analyses.similarity import linear_cka
from layerdrift.analyses.spectrum import effective_ranks
from layerdrift.analyses.topology import (
    bottleneck_distance,
    diagram_summary,
    pairwise_euclidean,
    rips_diagrams,
    wasserstein_distance,
)
from layerdrift.analyses.trajectory import (
    checkpoint_drift_matrix,
    concentration_test,
    half_distance_step,
    path_velocities,
)
from layerdrift.core.hashing import fingerprint
from layerdrift.core.jit import cache_compiled_umap
from layerdrift.core.naming import point_label
from layerdrift.errors import LayerdriftError
from layerdrift.training.series import series_step
from layerdrift.workbench.config import ExperimentConfig, TrajectorySpec
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output

DIMS = (0, 1)


def topology_points(spec: TrajectorySpec, n_points: int) -> list[int]:
    """Residual points for persistent homology: evenly spaced from the first block's output to the final norm, or the
    listed ones.

    The embedding is left out by default: at the last token every prompt of a template shares one token, so its cloud is
    a single point.
    """
    if isinstance(spec.topology_layers, int):
        first = 1 if n_points > 1 else 0
        return sorted(
            {round(x) for x in np.linspace(first, n_points - 1, max(1, min(spec.topology_layers, n_points - first)))}
        )
    bad = [p for p in spec.topology_layers if not 0 <= p < n_points]
    if bad:
        raise LayerdriftError(
            f"trajectory.topology_layers lists point {bad[0]}, outside 0..{n_points - 1} (0 = "
            f"embedding, {n_points - 1} = final norm)."
        )
    return sorted(set(spec.topology_layers))


def subsample_indices(n: int, size: int, count: int, seed: int) -> np.ndarray:
    """(count, size) prompt indices, one random subset per row, shared by every variant so distances are paired."""
    rng = np.random.default_rng(seed)
    size = min(size, n)
    return np.stack([np.sort(rng.choice(n, size=size, replace=False)) for _ in range(count)])


def diagram_rows(
    variant: str, point: int, label: str, per_sub: list[list[np.ndarray]]
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """Per homology dimension: each diagram statistic's mean and sd over the subsamples, and the first
    subsample's bars."""
    rows, bars = [], []
    for dim in DIMS:
        stats = pd.DataFrame([diagram_summary(d[dim]) for d in per_sub])
        for stat in stats.columns:
            rows.append(
                {
                    "variant": variant,
                    "layer": point,
                    "label": label,
                    "dim": dim,
                    "stat": stat,
                    "mean": float(stats[stat].mean()),
                    "sd": float(stats[stat].std(ddof=1)) if len(stats) > 1 else 0.0,
                }
            )
        d0 = per_sub[0][dim]
        bars.append(
            pd.DataFrame(
                {"variant": variant, "layer": point, "label": label, "dim": dim, "birth": d0[:, 0], "death": d0[:, 1]}
            )
        )
    return rows, bars


@dataclass(frozen=True)
class PersistenceInputs:
    """What every persistent-homology task reads: the variants' stacks, the subsample indices, the engine."""

    stacks: dict[str, np.ndarray]
    subsamples: np.ndarray
    engine: str


def persistence_task(job: tuple[str, int], inputs: PersistenceInputs) -> list[list[np.ndarray]]:
    """H0 and H1 diagrams of one variant at one point, one per subsample."""
    v, p = job
    x = inputs.stacks[v][p]
    return [rips_diagrams(pairwise_euclidean(x[idx]), 1, inputs.engine) for idx in inputs.subsamples]


class TrajectoryRun:
    """Trajectory and topology analyses of one run store."""

    def __init__(self, ctx: RunContext):
        config, store = ctx.config, ctx.store
        self.ctx, self.config, self.store = ctx, config, store
        self.spec: TrajectorySpec = config.trajectory or TrajectorySpec()
        self.prompt_set = config.analysis.prompt_set or store.prompt_sets[0]
        self.series = store.series
        self.floors = list(store.manifest.get("noise_floor", []))
        self.headline = [v for v in store.main_variants if v not in self.floors]
        # noise-floor variants too: their distance to the reference is the topological floor
        self.variants = list(store.variants)
        captures = {v: store.manifest["captures"][f"{v}/{self.prompt_set}"]["fingerprint"] for v in self.variants}
        self.key = fingerprint(
            {
                "spec": self.spec.model_dump(mode="json"),
                "captures": captures,
                "series": self.series,
                "seed": config.seed,
                "k": config.analysis.k,
            }
        )

    def _stack(self, variant: str) -> np.ndarray:
        points = self.store.residual_points(variant, self.prompt_set)
        return np.stack([self.store.activations(variant, self.prompt_set, p, "last") for p in points]).astype(
            np.float32
        )

    def run(self) -> Output:
        """Trajectories along each series, topology of every variant, and the UMAP across checkpoints."""
        progress, say = self.ctx.progress, self.ctx.say
        stacks = {v: self._stack(v) for v in self.variants}
        ref = stacks[self.variants[0]]
        other = next((v for v in self.variants if stacks[v].shape[0] != ref.shape[0]), None)
        if other is not None:
            raise LayerdriftError(
                "trajectory and topology analyses need variants of one depth, but "
                f"'{self.variants[0]}' has {ref.shape[0]} residual points and "
                f"'{other}' has {stacks[other].shape[0]}; put models of different depth in separate runs."
            )
        labels = [point_label(p) for p in self.store.residual_points(self.variants[0], self.prompt_set)]
        say("trajectories along checkpoint series")
        traj, conc, band = self._trajectories(stacks, labels)
        tables = {"trajectory": traj}
        topo = {
            "topology": pd.DataFrame(),
            "topology_distances": pd.DataFrame(),
            "persistence_diagrams": pd.DataFrame(),
        }
        if self.spec.topology:
            topo, tconc, tband = self._topology(stacks, labels, progress, say)
            conc, band = conc + tconc, band + tband
        tables.update(topo)
        tables["concentration"] = pd.DataFrame(conc)
        tables["velocity_band"] = pd.DataFrame(band)
        say("UMAP across checkpoints")
        tables["trajectory_projection"] = self._projection(stacks, labels, ref.shape[0])
        return Output(tables)

    def _concentration_rows(
        self,
        series: str,
        metric: str,
        distances: np.ndarray,
        layer_labels: list[str],
        steps: list[int],
        floor: np.ndarray | None,
    ) -> tuple[list[dict], list[dict]]:
        """Concentration test per layer and for the mean over layers; distances: (layers, k, k); floor: the same
        distance between the reference and the noise-floor variant per layer (None without one), which a velocity
        must exceed to be more than numerical noise."""
        stacked = np.concatenate([distances, distances.mean(0, keepdims=True)])
        names = [*layer_labels, "all"]
        test = concentration_test(stacked, self.spec.n_perm, self.config.seed)
        velocity = path_velocities(stacked)
        floors = np.append(floor, floor.mean()) if floor is not None else np.full(len(names), np.nan)
        half = half_distance_step(stacked[:, 0, :], np.asarray(steps))
        conc = [
            {
                "series": series,
                "metric": metric,
                "label": name,
                "c": float(test.c[i]),
                "p": float(test.p[i]),
                "null_mean": float(test.null_mean[i]),
                "expected": test.expected,
                "n_checkpoints": len(steps),
                "first_third_until_step": steps[max(1, (len(steps) - 1) // 3)],
                "half_distance_step": float(half[i]),
                "last_step": steps[-1],
                "floor": float(floors[i]),
                "intervals_above_floor": int((velocity[i] > floors[i]).sum()),
            }
            for i, name in enumerate(names)
        ]
        band = [
            {
                "series": series,
                "metric": metric,
                "label": name,
                "interval": t,
                "step_from": steps[t],
                "step_to": steps[t + 1],
                "velocity": float(velocity[i, t]),
                "q025": float(test.band[i, t, 0]),
                "q50": float(test.band[i, t, 1]),
                "q975": float(test.band[i, t, 2]),
                "floor": float(floors[i]),
                "above_floor": bool(velocity[i, t] > floors[i]),
            }
            for i, name in enumerate(names)
            for t in range(len(steps) - 1)
        ]
        return conc, band

    def _drift_floor(self, stacks: dict[str, np.ndarray]) -> np.ndarray | None:
        """Mean cosine drift between the reference and the first noise-floor variant at every point, or None."""
        if not self.floors:
            return None
        return drift_by_layer(stacks[self.store.reference], stacks[self.floors[0]]).mean(axis=1)

    def _trajectories(
        self, stacks: dict[str, np.ndarray], labels: list[str]
    ) -> tuple[pd.DataFrame, list[dict], list[dict]]:
        rows, conc, band = [], [], []
        k = self.config.analysis.k
        for name, members in self.series.items():
            steps = [series_step(v) for v in members]
            xs = np.stack([stacks[v] for v in members])  # (checkpoints, points, n, d)
            distances = np.stack([checkpoint_drift_matrix(xs[:, layer]) for layer in range(xs.shape[1])])
            for c, v in enumerate(members):
                for layer in range(xs.shape[1]):
                    x0, xp, xc = xs[0, layer], xs[max(c - 1, 0), layer], xs[c, layer]
                    rows.append(
                        {
                            "series": name,
                            "variant": v,
                            "step": steps[c],
                            "checkpoint": c,
                            "layer": layer,
                            "label": labels[layer],
                            "drift_start": float(distances[layer, 0, c]),
                            "drift_prev": float(distances[layer, c - 1, c]) if c else np.nan,
                            "cka_start": linear_cka(x0, xc),
                            "cka_prev": linear_cka(xp, xc) if c else np.nan,
                            "jaccard_start": float(knn_jaccard(x0, xc, k).mean()),
                            "rankme": effective_ranks(xc)["rankme"],
                        }
                    )
            c_rows, b_rows = self._concentration_rows(
                name, "drift", distances, labels, steps, self._drift_floor(stacks)
            )
            conc += c_rows
            band += b_rows
        return pd.DataFrame(rows), conc, band

    def _topology(self, stacks: dict[str, np.ndarray], labels: list[str], progress: Any, say: Callable[[str], None]):
        n_points, n = next(iter(stacks.values())).shape[:2]
        points = topology_points(self.spec, n_points)
        subs = subsample_indices(n, self.spec.subsample_size, self.spec.subsamples, self.config.seed)
        say(
            f"persistent homology: {len(self.variants)} variants x {len(points)} points x "
            f"{len(subs)} subsamples of {subs.shape[1]}"
        )
        task = progress.add_task("persistence diagrams", total=len(self.variants) * len(points)) if progress else None
        jobs = [(v, p) for v in self.variants for p in points]
        per_job = self.ctx.map(
            persistence_task,
            jobs,
            self.ctx.engine.share(PersistenceInputs(stacks, subs, self.spec.engine)),
            "a persistent-homology task",
            each=(lambda i, r: progress.update(task, advance=1)) if progress else None,
        )
        diagrams: dict[tuple[str, int], list[list[np.ndarray]]] = dict(zip(jobs, per_job))
        summary_rows, bar_rows = [], []
        for (v, p), per_sub in diagrams.items():
            rows, bars = diagram_rows(v, p, labels[p], per_sub)
            summary_rows += rows
            bar_rows += bars
        say("distances between persistence diagrams")
        paired = PairedDistances(diagrams, self.spec.distance_subsamples)
        dist_rows, conc, band = self._series_distances(paired, points, labels)
        for a, b in combinations(self.headline, 2):
            dist_rows += self._distance_rows("pair", "", a, b, paired, points, labels)
        for floor in self.floors:
            dist_rows += self._distance_rows("floor", "", self.store.reference, floor, paired, points, labels)
        tables = {
            "topology": pd.DataFrame(summary_rows),
            "topology_distances": pd.DataFrame(dist_rows),
            "persistence_diagrams": pd.concat(bar_rows, ignore_index=True) if bar_rows else pd.DataFrame(),
        }
        return tables, conc, band

    def _series_distances(
        self, paired: PairedDistances, points: list[int], labels: list[str]
    ) -> tuple[list[dict], list[dict], list[dict]]:
        """Along each series: Wasserstein concentration of every two checkpoints, and the consecutive and
        from-start distance rows."""
        dist_rows, conc, band = [], [], []
        for name, members in self.series.items():
            steps = [series_step(v) for v in members]
            for dim in DIMS:
                w = np.zeros((len(points), len(members), len(members)))
                for li, p in enumerate(points):
                    for i, j in combinations(range(len(members)), 2):
                        w[li, i, j] = w[li, j, i] = paired.wasserstein(members[i], members[j], p, dim).mean()
                floor = (
                    np.array([paired.wasserstein(self.store.reference, self.floors[0], p, dim).mean() for p in points])
                    if self.floors
                    else None
                )
                c_rows, b_rows = self._concentration_rows(
                    name, f"wasserstein_h{dim}", w, [labels[p] for p in points], steps, floor
                )
                conc += c_rows
                band += b_rows
            for c in range(1, len(members)):
                for kind, a in (("consecutive", members[c - 1]), ("from_start", members[0])):
                    if kind == "from_start" and c == 1:
                        continue  # the same pair as consecutive
                    dist_rows += self._distance_rows(kind, name, a, members[c], paired, points, labels)
        return dist_rows, conc, band

    @staticmethod
    def _distance_rows(
        kind: str, series: str, a: str, b: str, paired: PairedDistances, points: list[int], labels: list[str]
    ) -> list[dict]:
        rows = []
        for p in points:
            for dim in DIMS:
                w = paired.wasserstein(a, b, p, dim)
                bn = paired.bottleneck(a, b, p, dim)
                rows.append(
                    {
                        "kind": kind,
                        "series": series,
                        "a": a,
                        "b": b,
                        "step_a": _step_or_none(a),
                        "step_b": _step_or_none(b),
                        "layer": p,
                        "label": labels[p],
                        "dim": dim,
                        "wasserstein": float(w.mean()),
                        "wasserstein_sd": float(w.std(ddof=1)) if len(w) > 1 else 0.0,
                        "bottleneck": float(bn.mean()),
                        "bottleneck_sd": float(bn.std(ddof=1)) if len(bn) > 1 else 0.0,
                    }
                )
        return rows

    def _projection(self, stacks: dict[str, np.ndarray], labels: list[str], n_points: int) -> pd.DataFrame:
        layer = n_points - 1 if self.spec.umap_layer == "final" else int(self.spec.umap_layer)
        if not 0 <= layer < n_points:
            raise LayerdriftError(f"trajectory.umap_layer = {self.spec.umap_layer} is outside 0..{n_points - 1}.")
        members = list(dict.fromkeys([*self.headline, *[v for m in self.series.values() for v in m]]))
        if {stacks[v].shape[-1] for v in members} != {stacks[members[0]].shape[-1]}:
            return pd.DataFrame(columns=["variant", "series", "step", "layer", "label", "concept", "x", "y"])
        cache_compiled_umap()  # no compiling UMAP again in every process (layerdrift.core.jit)
        xy = joint_umap(
            [stacks[v][layer] for v in members],
            seed=self.config.seed,
            n_neighbors=self.config.analysis.umap_neighbors,
            min_dist=self.config.analysis.umap_min_dist,
        )
        owner = {v: s for s, m in self.series.items() for v in m}
        return pd.concat(
            [
                pd.DataFrame(
                    {
                        "variant": v,
                        "series": owner.get(v, ""),
                        "step": _step_or_none(v),
                        "layer": layer,
                        "label": labels[layer],
                        "concept": np.arange(xy.shape[1]),
                        "x": xy[i, :, 0],
                        "y": xy[i, :, 1],
                    }
                )
                for i, v in enumerate(members)
            ],
            ignore_index=True,
        )


class PairedDistances:
    """W2 and bottleneck distances between two variants' diagrams on the first ``count`` paired subsamples, each pair
    computed once."""

    def __init__(self, diagrams: dict[tuple[str, int], list[list[np.ndarray]]], count: int):
        self.diagrams, self.count = diagrams, count
        self._cache: dict[tuple[str, str, str, int, int], np.ndarray] = {}

    def _paired(self, measure: str, a: str, b: str, point: int, dim: int) -> np.ndarray:
        key = (measure, *sorted((a, b)), point, dim)  # both distances are symmetric
        if key not in self._cache:
            fn = wasserstein_distance if measure == "w2" else bottleneck_distance
            pairs = zip(self.diagrams[(a, point)][: self.count], self.diagrams[(b, point)][: self.count])
            self._cache[key] = np.array([fn(x[dim], y[dim]) for x, y in pairs])
        return self._cache[key]

    def wasserstein(self, a: str, b: str, point: int, dim: int) -> np.ndarray:
        return self._paired("w2", a, b, point, dim)

    def bottleneck(self, a: str, b: str, point: int, dim: int) -> np.ndarray:
        return self._paired("bottleneck", a, b, point, dim)


def _step_or_none(variant: str) -> float:
    try:
        return float(series_step(variant))
    except (IndexError, ValueError):
        return float("nan")


def trajectory_settings(config: ExperimentConfig) -> TrajectorySpec | None:
    """The trajectory settings; on by default when the config has checkpoint series."""
    if config.trajectory is not None:
        return config.trajectory
    return TrajectorySpec() if config.series else None


def trajectory_summary(concentration: pd.DataFrame, traj: pd.DataFrame) -> pd.DataFrame:
    """Per series: drift from step 0 at the last checkpoint, the step where half of it was reached, and C with its p
    (mean
    over points)."""
    rows = []
    for s, t in traj.groupby("series", sort=False):
        last = t[t["checkpoint"] == t["checkpoint"].max()]
        peak = last.loc[last["drift_start"].idxmax()]
        c = concentration[(concentration["series"] == s) & (concentration["label"] == "all")].set_index("metric")
        final = concentration[
            (concentration["series"] == s)
            & (concentration["metric"] == "drift")
            & (concentration["label"] == peak["label"])
        ]
        row = {
            "series": s,
            "checkpoints": int(t["checkpoint"].max()) + 1,
            "last step": int(last["step"].iloc[0]),
            "max drift": float(peak["drift_start"]),
            "at point": peak["label"],
            "half of it by step": float(final["half_distance_step"].iloc[0]) if len(final) else np.nan,
        }
        for metric, name in (("drift", "drift"), ("wasserstein_h1", "W2 H1")):
            if metric in c.index:
                row[f"C {name}"], row[f"p {name}"] = float(c.loc[metric, "c"]), float(c.loc[metric, "p"])
        if "drift" in c.index:
            row["C even"] = float(c.loc["drift", "expected"])
            if np.isfinite(c.loc["drift", "floor"]):
                row["intervals above the floor"] = (
                    f"{c.loc['drift', 'intervals_above_floor']} of {row['checkpoints'] - 1}"
                )
        rows.append(row)
    return pd.DataFrame(rows)


def topology_pair_table(dist: pd.DataFrame, dim: int = 1) -> pd.DataFrame:
    """Pairs of headline variants x residual points: W2 between H{dim} diagrams (the pair kind of
    ``topology_distances``)."""
    d = dist[dist["kind"].isin(["pair", "floor"]) & (dist["dim"] == dim)].assign(
        pair=lambda x: x["a"] + "→" + x["b"] + np.where(x["kind"] == "floor", " (floor)", "")
    )
    return (
        d.pivot_table(index="pair", columns="label", values="wasserstein", sort=False)
        .reset_index()
        .rename_axis(None, axis=1)
    )


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    t = results.tables
    out = {}
    traj, conc, dist = t.get("trajectory"), t.get("concentration"), t.get("topology_distances")
    if traj is not None and len(traj) and conc is not None:
        title = (
            "Checkpoint series: largest drift from step 0 at the last checkpoint and the step that reached half of "
            "it; C = share of change in the first third of intervals (p vs random orderings)"
        )
        out[title] = trajectory_summary(conc, traj)
    if dist is not None and len(dist) and (dist["kind"] == "pair").any():
        title = "Topology between variants: Wasserstein-2 between H1 diagrams (mean over paired subsamples) per point"
        out[title] = topology_pair_table(dist)
    return out


METRIC_NAMES = {"drift": "representation drift", "wasserstein_h0": "H0 topology", "wasserstein_h1": "H1 topology"}


def concentration_phrase(row: pd.Series, what: str) -> str:
    """'Series S: WHAT velocity concentrates early (C = .. vs .. for even change, p = ..)' from a row with series, c,
    expected and p (the trajectory's and the lens's velocities alike)."""
    early = (
        "concentrates early" if row["p"] < SIGNIFICANCE and row["c"] > row["expected"] else "is not concentrated early"
    )
    return (
        f"Series {row['series']}: {what} velocity {early} (C = {row['c']:.2f} vs {row['expected']:.2f} for even "
        f"change, p = {row['p']:.2g})"
    )


def velocity_finding(row: pd.Series) -> str:
    """One series' velocity along training (mean over points): where it concentrates, and against the noise floor."""
    text = concentration_phrase(row, METRIC_NAMES.get(row["metric"], row["metric"]))
    intervals = row["n_checkpoints"] - 1
    if not np.isfinite(row["floor"]):
        return text + "; the run has no noise-floor variant to read the velocities against."
    return (
        f"{text}; {row['intervals_above_floor']} of {intervals} checkpoint intervals move more than the noise floor "
        f"(the reference against its noise-floor variant: {row['floor']:.3g})."
    )


def findings(results: Any) -> list[str]:
    """Per series and velocity (mean over points): early concentration and the intervals above the noise floor."""
    conc = results.tables.get("concentration")
    if conc is None or conc.empty or "floor" not in conc:
        return []
    return [velocity_finding(row) for _, row in conc[conc["label"] == "all"].iterrows()]


EXPERIMENT = Experiment(
    name="trajectory",
    version="4",
    settings=trajectory_settings,
    runner=TrajectoryRun,
    tables=(
        "trajectory",
        "concentration",
        "velocity_band",
        "topology",
        "topology_distances",
        "persistence_diagrams",
        "trajectory_projection",
    ),
    summaries=summaries,
    findings=findings,
)
