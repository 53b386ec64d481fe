"""Run every analysis on a run store and write the result tables (Parquet) into ``RUN/results``.

The analyses are pure functions in ``layerdrift.analyses``; this module only reads arrays from the
store, loops over pairs and layers, and writes tables. The report, the dashboard and the Python
API all read these tables, so a number is computed in exactly one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float

from layerdrift.analyses.degenerate import degenerate_points, degenerate_reason
from layerdrift.analyses.depth import depth_matches
from layerdrift.analyses.drift import percentile_rank
from layerdrift.analyses.headline import SIGNIFICANCE, category_rows, floor_log_ratio, pair_row, top_drifters
from layerdrift.analyses.neighbours import cosine_similarity_matrix, knn_indices
from layerdrift.analyses.pair_metrics import PAIR_METRICS, PairStacks
from layerdrift.analyses.projection import MAPS_VERSION, joint_pca, joint_umap
from layerdrift.analyses.similarity import cka_matrix
from layerdrift.analyses.spectrum import effective_ranks
from layerdrift.analyses.uncertainty import bootstrap_mean_ci
from layerdrift.core.engine import Engine, LocalEngine
from layerdrift.core.files import atomic_path, read_cached_parquet
from layerdrift.core.hashing import fingerprint
from layerdrift.core.jit import cache_compiled_umap
from layerdrift.core.naming import EMBED_HOOK, FINAL_NORM_HOOK, RESIDUAL, point_label
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.config import AnalysisSpec, ExperimentConfig
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output
from layerdrift.workbench.store.results import (
    results_dir,
)
from layerdrift.workbench.store.runstore import RunStore

RESULT_SET = "analysis"
RANK_COLUMNS = tuple(effective_ranks(np.eye(3)))  # rankme, renyi_0.5, renyi_2, renyi_inf
PROJECTION_COLUMNS = {
    "layer": "int64",
    "label": "object",
    "method": "object",
    "variant": "object",
    "concept": "int64",
    "x": "float64",
    "y": "float64",
}
TABLES = (
    "pairs",
    "categories",
    "top_drifters",
    "drift",
    "layers",
    "layers_by_category",
    "cka_cross",
    "effective_rank",
    "neighbours",
    "projections",
)


MIN_CONCEPTS = 4  # debiased CKA divides by n - 3; bootstrap CIs and permutation tests need a few concepts


def check_analysis_inputs(config: ExperimentConfig) -> None:
    """Before anything is captured: the capture gives the analyses what they read, and the analysed
    vocabulary is large enough for them. Every problem is named in one sentence."""
    from layerdrift.concepts.vocabulary import load_vocabulary

    problems = []
    hooks, capture = set(config.capture.hooks), config.capture
    if RESIDUAL not in hooks:
        needed = {
            EMBED_HOOK: "the embedding",
            "blocks.{layer}.hook_resid_post": "every block's output",
            FINAL_NORM_HOOK: "the final norm",
        }
        missing = [f"'{h}' ({what})" for h, what in needed.items() if h not in hooks]
        if missing:
            problems.append(f"capture.hooks lacks {', '.join(missing)}")
    if "last" not in capture.positions:
        problems.append("capture.positions lacks 'last'")
    capture_problems = bool(problems)
    analysed = config.analysed_prompt_set()
    ps, vocab = analysed.name, load_vocabulary(analysed.vocabulary)
    n, k = len(vocab), config.analysis.k
    if n < MIN_CONCEPTS:
        problems.append(f"prompt set '{ps}' has {n} concepts, but the analyses need at least {MIN_CONCEPTS}")
    elif k >= n:
        problems.append(
            f"analysis.k = {k} neighbours needs more than {k} concepts, but prompt set '{ps}' "
            f"has {n} (set k to at most {n - 1})"
        )
    if problems:
        fix = (
            ' (capture "residual" at "last", or capture other points alone with `layerdrift extract`)'
            if capture_problems
            else ""
        )
        raise LayerdriftError(
            f"the analyses cannot run on this config: {'; '.join(problems)}{fix}; nothing was written."
        )


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    floor: bool = False

    @property
    def label(self) -> str:
        return f"{self.a}→{self.b}"


def variant_pairs(store: RunStore) -> list[Pair]:
    """Every pair of non-floor variants (config order), plus reference -> each noise-floor variant."""
    floors = set(store.manifest.get("noise_floor", []))
    main = [v for v in store.main_variants if v not in floors]
    pairs = [Pair(a, b) for a, b in combinations(main, 2)]
    return pairs + [Pair(store.reference, f, floor=True) for f in store.main_variants if f in floors]


def analysis_fingerprint(
    store: RunStore, prompt_set: str, spec: AnalysisSpec, seed: int, extra: dict[str, Any] | None = None
) -> str:
    captures = {v: store.manifest["captures"][f"{v}/{prompt_set}"]["fingerprint"] for v in store.main_variants}
    payload = {
        "captures": captures,
        "spec": spec.model_dump(mode="json"),
        "seed": seed,
        "noise_floor": store.manifest.get("noise_floor"),
        **(extra or {}),
    }
    return fingerprint(payload)


@dataclass
class Stacks:
    """Every variant's residual points at the last token, stacked: (points, n, d), and which points are degenerate
    (the prompts' vectors do not vary there), with the sentence that says why."""

    arrays: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    reasons: dict[str, dict[int, str]]  # per variant: degenerate point -> why nothing is measured there

    @classmethod
    def read(cls, store: RunStore, prompt_set: str) -> "Stacks":
        arrays, labels, reasons = {}, {}, {}
        for v in store.main_variants:
            points = store.residual_points(v, prompt_set)
            arrays[v] = np.stack([store.activations(v, prompt_set, p, "last") for p in points]).astype(np.float64)
            labels[v] = [point_label(p) for p in points]
            shared = shared_last_token(store.tokenization(v, prompt_set))
            reasons[v] = {
                int(i): degenerate_reason(labels[v][i], shared if points[i] == EMBED_HOOK else None)
                for i in np.flatnonzero(degenerate_points(arrays[v]))
            }
        return cls(arrays, labels, reasons)

    @cached_property
    def degenerate(self) -> dict[str, np.ndarray]:
        """Per variant, which points are degenerate: (points,) bool."""
        return {v: np.isin(np.arange(len(self.labels[v])), list(r)) for v, r in self.reasons.items()}

    def notes(self) -> list[str]:
        """One note per degenerate point (naming the variants where only some are degenerate)."""
        by_reason: dict[str, list[str]] = {}
        for v, reasons in self.reasons.items():
            for reason in reasons.values():
                by_reason.setdefault(reason, []).append(v)
        everyone = len(self.arrays)
        return [r if len(vs) == everyone else f"{', '.join(vs)}: {r}" for r, vs in by_reason.items()]


def shared_last_token(tokenization: dict[str, Any]) -> str | None:
    """The last token every prompt ends in, as text (byte-level and SentencePiece space marks shown as spaces), or
    None when the prompts end differently."""
    last = {tuple(toks)[pos[0]] for toks, pos in zip(tokenization["tokens"], tokenization["positions"]["last"])}
    if len(last) != 1:
        return None
    token = last.pop()
    return " " + token[1:] if token[:1] in ("Ġ", "▁") else token


def headline_index(spec: AnalysisSpec, n_points: int) -> int:
    if spec.headline_layer == "final":
        return n_points - 1
    if not 0 <= spec.headline_layer < n_points:
        raise LayerdriftError(
            f"analysis.headline_layer = {spec.headline_layer} is outside 0..{n_points - 1} (0 "
            f"= embedding, {n_points - 1} = final norm)."
        )
    return spec.headline_layer


def pair_points(pair: Pair, stacks: Stacks, reference: str) -> np.ndarray:
    """The rows of a pair's per-point tables: (reference point, a's point, b's point), every point of the shallowest
    of the three models matched by relative depth in the others (the identity when the depths agree)."""
    return depth_matches([len(stacks.labels[v]) for v in (reference, pair.a, pair.b)])


def pair_notes(pair: Pair, stacks: Stacks, align: str) -> list[str]:
    """What a reader must know about how a pair of different depth or width is compared."""
    (na, _, da), (nb, _, db) = stacks.arrays[pair.a].shape, stacks.arrays[pair.b].shape
    notes = []
    if na != nb:
        notes.append(
            f"{pair.label}: the variants have {na} and {nb} residual points, so they are compared at the "
            f"{min(na, nb)} points of the shallower one, each matched to the point at the same relative depth "
            "(embedding to embedding, block k of L to the block at k/L, final norm to final norm); the cross-layer "
            "CKA map compares every point with every other."
        )
    if da != db and align != "procrustes":
        notes.append(
            f"{pair.label}: cosine drift needs one width, but the variants have {da} and {db} dimensions; "
            "CKA and Jaccard are reported, and analysis.align = 'procrustes' adds aligned drift."
        )
    elif da != db:
        notes.append(
            f"{pair.label}: drift is measured after an orthogonal Procrustes map of {pair.a}'s {da} dimensions onto "
            f"{pair.b}'s {db} at each point, fitted on these same concepts, so it is a lower bound on the drift."
        )
    return notes


def check_alignment(stacks: Stacks, align: str) -> None:
    """Refuse an alignment that has nothing to align."""
    widths = {a.shape[2] for a in stacks.arrays.values()}
    if align == "procrustes" and len(widths) == 1:
        raise LayerdriftError(
            f"analysis.align = 'procrustes' maps variants of different widths into one space, but every variant of "
            f"this run has {widths.pop()} dimensions, so there is nothing to align; remove analysis.align."
        )


def maps_reason(stacks: Stacks) -> str | None:
    """Why the run has no joint maps (they need every variant in one space), or None."""
    widths = sorted({a.shape[2] for a in stacks.arrays.values()})
    depths = sorted({a.shape[0] for a in stacks.arrays.values()})
    if len(widths) == 1 and len(depths) == 1:
        return None
    what = f"{' and '.join(map(str, widths))} dimensions" if len(widths) > 1 else ""
    what += (" and " if what and len(depths) > 1 else "") + (
        f"{' and '.join(map(str, depths))} residual points" if len(depths) > 1 else ""
    )
    return f"joint maps need every variant in one space, but the variants have {what}, so none are drawn."


@dataclass
class PairTables:
    """One pair's rows of the drift tables (the headline ones only at the headline layer), and its per-concept drift
    at every point (NaN at degenerate points) for the pairs read against it."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    drift: list[pd.DataFrame] = field(default_factory=list)
    layers_by_category: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    top_drifters: list[pd.DataFrame] = field(default_factory=list)
    drift_values: np.ndarray | None = None


@dataclass(frozen=True)
class Headline:
    """What every pair's tables share: the settings, the reference and its headline point, the concepts, and the
    noise floor's per-concept drift at every reference point (points, n) that the other pairs are read against
    (None without a floor variant)."""

    spec: AnalysisSpec
    seed: int
    reference: str
    head: int
    concepts: Concepts
    floor: np.ndarray | None = None


def rows_of(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[idx]``, without a copy when ``idx`` is every row in order."""
    every = len(idx) == len(x) and (idx == np.arange(len(x))).all()
    return x if every else x[idx]


def metric_values(
    pair: Pair, stacks: Stacks, cross: CrossCKA, spec: AnalysisSpec, points: np.ndarray
) -> dict[str, Any]:
    """Every registered pair metric's values for one pair at its matched points (rows of ``pair_points``); those
    that need the prompts to vary are NaN at the points degenerate in either variant."""
    ia, ib = points[:, 1], points[:, 2]
    data = PairStacks(
        rows_of(stacks.arrays[pair.a], ia),
        rows_of(stacks.arrays[pair.b], ib),
        (cross.biased[ia, ib], cross.debiased[ia, ib]),
        spec.k,
        spec.align == "procrustes",
    )
    undefined = stacks.degenerate[pair.a][ia] | stacks.degenerate[pair.b][ib]
    values = {m.name: m.values(data) for m in PAIR_METRICS}
    for m in PAIR_METRICS:
        if values[m.name] is not None and m.needs_spread:
            values[m.name][undefined] = np.nan
    return values


def pair_tables(pair: Pair, stacks: Stacks, cross: CrossCKA, at: Headline) -> PairTables:
    """Every registered pair metric at every matched point of one pair, its per-concept drift at every reference
    point (NaN where the pair has no point) and its headline rows."""
    out = PairTables()
    spec, seed, concepts = at.spec, at.seed, at.concepts
    points = pair_points(pair, stacks, at.reference)
    values = metric_values(pair, stacks, cross, spec, points)
    columns: dict[str, list[float]] = {}
    for m in PAIR_METRICS:
        if values[m.name] is not None:
            columns.update(m.summary(values[m.name], spec.n_boot, seed))
    drift, jac = values["drift"], values["jaccard"]
    aligned = drift is not None and stacks.arrays[pair.a].shape[2] != stacks.arrays[pair.b].shape[2]
    ref_labels = stacks.labels[at.reference]
    fields = {"pair": pair.label, "a": pair.a, "b": pair.b, "floor": pair.floor, "aligned": aligned}
    for row, (r, ia, ib) in enumerate(points):
        matched = {"label_a": stacks.labels[pair.a][ia], "label_b": stacks.labels[pair.b][ib]}
        at_row = {c: v[row] for c, v in columns.items()}
        out.layers.append({**fields, "layer": int(r), "label": ref_labels[r], **matched, **at_row})
    if drift is None:
        return out
    out.drift_values = np.full((len(ref_labels), drift.shape[1]), np.nan)
    out.drift_values[points[:, 0]] = drift
    floor = None if pair.floor or at.floor is None else at.floor
    for row, r in enumerate(points[:, 0]):
        ratio = floor_log_ratio(drift[row], floor[r]) if floor is not None else np.full(drift.shape[1], np.nan)
        frame = concept_drift_rows(pair, int(r), ref_labels[r], drift[row], jac[row], concepts)
        out.drift.append(frame.assign(floor_log_ratio=ratio))
        out.layers_by_category += category_layer_rows(
            pair, int(r), ref_labels[r], drift[row], concepts, spec.n_boot, seed
        )
    head = int(points[np.abs(points[:, 0] - at.head).argmin(), 0])  # the headline point, or the nearest matched one
    dh = out.drift_values[head]
    if np.isnan(dh).all():  # a degenerate headline point: the notes say why; no headline rows
        return out
    fields = {"a": pair.a, "b": pair.b, "floor": pair.floor, "aligned": aligned, "layer": head}
    jh = jac[points[:, 0] == head][0]
    out.pairs.append({**pair_row(pair.label, dh, spec.n_boot, seed), **fields, "jaccard_mean": float(jh.mean())})
    fh = floor[head] if floor is not None else None
    rows = category_rows(pair.label, dh, concepts.categories, spec.n_boot, spec.n_perm, seed, fh, pair.floor)
    out.categories = [dict(r, floor=pair.floor) for r in rows]
    out.top_drifters.append(
        top_drifters(pair.label, dh, concepts.terms, concepts.categories, spec.top_n).assign(floor=pair.floor)
    )
    return out


@dataclass(frozen=True)
class Concepts:
    """The prompt set's terms and their categories, in capture order."""

    terms: list[str]
    categories: list[str]


def concept_drift_rows(
    pair: Pair, i: int, label: str, drift: np.ndarray, jaccard: np.ndarray, concepts: Concepts
) -> pd.DataFrame:
    """Every concept's drift, its percentile and its Jaccard overlap at one point."""
    return pd.DataFrame(
        {
            "pair": pair.label,
            "layer": i,
            "label": label,
            "concept": np.arange(len(concepts.terms)),
            "term": concepts.terms,
            "category": concepts.categories,
            "drift": drift,
            "percentile": percentile_rank(drift),
            "jaccard": jaccard,
        }
    )


def category_layer_rows(
    pair: Pair, i: int, label: str, drift: np.ndarray, concepts: Concepts, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Mean drift of each category at one point, with its bootstrap CI."""
    cats = np.asarray(concepts.categories)
    rows = []
    for cat in dict.fromkeys(concepts.categories):
        sel = drift[cats == cat]
        low, high = bootstrap_mean_ci(sel, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "pair": pair.label,
                "floor": pair.floor,
                "layer": i,
                "label": label,
                "category": cat,
                "drift_mean": float(sel.mean()),
                "ci_low": float(low),
                "ci_high": float(high),
            }
        )
    return rows


@dataclass(frozen=True)
class CrossCKA:
    """CKA between every point of a pair's a and every point of its b (any depths), biased and debiased."""

    biased: Float[np.ndarray, "points_a points_b"]
    debiased: Float[np.ndarray, "points_a points_b"]

    @classmethod
    def of(cls, pair: Pair, stacks: Stacks) -> "CrossCKA":
        a, b = stacks.arrays[pair.a], stacks.arrays[pair.b]
        return cls(cka_matrix(a, b), cka_matrix(a, b, debiased=True))

    def rows(self, pair: Pair, stacks: Stacks) -> list[dict[str, Any]]:
        """The cka_cross table's rows of the pair."""
        return [
            {
                "pair": pair.label,
                "layer_a": i,
                "layer_b": j,
                "label_a": stacks.labels[pair.a][i],
                "label_b": stacks.labels[pair.b][j],
                "cka": self.biased[i, j],
                "cka_debiased": self.debiased[i, j],
            }
            for i in range(self.biased.shape[0])
            for j in range(self.biased.shape[1])
        ]


def variant_task(v: str, inputs: DriftInputs) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """One variant's rows of ``variant_rows``."""
    return variant_rows(inputs.stacks, inputs.at.spec.k, inputs.at.concepts.terms, [v])


def variant_rows(
    stacks: Stacks, k: int, terms: list[str], variants: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """Per variant (every one, or those given) and point: the effective ranks, and each concept's k nearest
    neighbours (neither at a degenerate point, where every neighbour is a tie: the ranks are NaN and the neighbour
    lists left out)."""
    rank_rows, neighbour_frames = [], []
    for v in variants or list(stacks.arrays):
        arr = stacks.arrays[v]
        for i in range(arr.shape[0]):
            point = {"variant": v, "layer": i, "label": stacks.labels[v][i]}
            if stacks.degenerate[v][i]:
                rank_rows.append(point | dict.fromkeys(RANK_COLUMNS, np.nan))
                continue
            rank_rows.append(point | effective_ranks(arr[i]))
            nb = knn_indices(arr[i], k)
            sims = np.take_along_axis(cosine_similarity_matrix(arr[i]), nb, axis=1)
            neighbour_frames.append(
                pd.DataFrame(
                    {
                        "variant": v,
                        "layer": i,
                        "concept": np.repeat(np.arange(arr.shape[1]), k),
                        "rank": np.tile(np.arange(1, k + 1), arr.shape[1]),
                        "neighbour": nb.ravel(),
                        "neighbour_term": np.asarray(terms)[nb.ravel()],
                        "similarity": sims.ravel(),
                    }
                )
            )
    return rank_rows, neighbour_frames


@dataclass(frozen=True)
class DriftInputs:
    """What every piece of the drift analyses reads, shipped once to wherever the pieces run."""

    stacks: Stacks
    at: Headline


@dataclass(frozen=True)
class PairJob:
    """One pair's piece of the analyses, with the noise floor's per-concept drift it is read against (or None)."""

    pair: Pair
    floor: np.ndarray | None = None

    @property
    def label(self) -> str:
        return f"pair {self.pair.label}"


def pair_task(job: PairJob, inputs: DriftInputs) -> tuple[PairTables, list[dict[str, Any]]]:
    """One pair's tables and its cross-layer CKA rows."""
    at = replace(inputs.at, floor=job.floor)
    cross = CrossCKA.of(job.pair, inputs.stacks)
    return pair_tables(job.pair, inputs.stacks, cross, at), cross.rows(job.pair, inputs.stacks)


def tables_of_pairs(pairs: list[Pair], inputs: Any, engine: Engine) -> tuple[list[PairTables], list[dict[str, Any]]]:
    """Every pair's tables and cross-layer CKA rows, in the order of ``pairs``; the noise-floor pairs first, so that
    the other pairs are read against the first floor variant's drift."""
    floors = [p for p in pairs if p.floor]
    done = dict(zip(floors, engine.map(pair_task, [PairJob(p) for p in floors], inputs, what="a drift task")))
    floor = next((t.drift_values for t, _ in done.values() if t.drift_values is not None), None)
    others = [p for p in pairs if not p.floor]
    done |= dict(zip(others, engine.map(pair_task, [PairJob(p, floor) for p in others], inputs, what="a drift task")))
    per_pair = [done[p] for p in pairs]
    return [t for t, _ in per_pair], [r for _, rows in per_pair for r in rows]


def joined_pair_tables(per_pair: list[PairTables]) -> dict[str, pd.DataFrame]:
    """The pairs' rows joined into the pair tables, pair by pair."""

    def rows(name: str) -> list:
        return [r for t in per_pair for r in getattr(t, name)]

    def frames(name: str) -> pd.DataFrame:
        return pd.concat(rows(name), ignore_index=True) if rows(name) else pd.DataFrame()

    return {
        "pairs": pd.DataFrame(rows("pairs")),
        "categories": pd.DataFrame(rows("categories")),
        "top_drifters": frames("top_drifters"),
        "drift": frames("drift"),
        "layers": pd.DataFrame(rows("layers")),
        "layers_by_category": pd.DataFrame(rows("layers_by_category")),
    }


def drift_inputs(store: RunStore, prompt_set: str, spec: AnalysisSpec, seed: int) -> DriftInputs:
    """What the drift pieces of one prompt set read: its stacks, its concepts and the headline settings."""
    info = store.manifest["prompt_sets"][prompt_set]
    stacks = Stacks.read(store, prompt_set)
    head = headline_index(spec, stacks.arrays[store.reference].shape[0])
    concepts = Concepts(info["terms"], info["categories"])
    return DriftInputs(stacks, Headline(spec, seed, store.reference, head, concepts))


def analyze(
    store: RunStore,
    spec: AnalysisSpec,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    engine: Engine | None = None,
) -> Output:
    """Compute every table (drift, Jaccard, CKA, ranks, projections, headline) for a run; meta says what the report
    needs to know about them (terms, pairs, labels, headline layer, warnings). The pieces (one per pair, per variant,
    per map layer) run on ``engine`` (default: this process)."""
    engine = engine or LocalEngine()
    say = progress or (lambda msg: None)
    ps = spec.prompt_set or store.prompt_sets[0]
    local = drift_inputs(store, ps, spec, seed)
    stacks, head, concepts = local.stacks, local.at.head, local.at.concepts
    pairs = variant_pairs(store)
    check_alignment(stacks, spec.align)
    notes = [n for p in pairs for n in pair_notes(p, stacks, spec.align)] + stacks.notes()

    inputs = engine.share(local)
    say("drift, neighbourhoods and cross-layer CKA")
    per_pair, cross_rows = tables_of_pairs(pairs, inputs, engine)
    say("effective rank and neighbour lists")
    per_variant = engine.map(variant_task, list(stacks.arrays), inputs, what="a drift task")
    rank_rows = [r for rows, _ in per_variant for r in rows]
    neighbour_frames = [f for _, frames in per_variant for f in frames]
    say("projections (UMAP, PCA)")
    projection = project_layers(store, stacks, spec, seed, ps, head, say, engine, inputs)

    tables = {
        **joined_pair_tables(per_pair),
        "cka_cross": pd.DataFrame(cross_rows),
        "effective_rank": pd.DataFrame(rank_rows),
        "neighbours": pd.concat(neighbour_frames, ignore_index=True),
        "projections": projection,
    }
    meta = {
        "prompt_set": ps,
        "reference": store.reference,
        "variants": store.main_variants,
        "noise_floor": store.manifest.get("noise_floor", []),
        "pairs": [{"label": p.label, "a": p.a, "b": p.b, "floor": p.floor} for p in pairs],
        "headline_layer": head,
        "headline_label": stacks.labels[store.reference][head],
        "labels": stacks.labels[store.reference],
        "terms": concepts.terms,
        "categories": concepts.categories,
        "warnings": notes,
        "no_maps": maps_reason(stacks),
        "degenerate": {stacks.labels[v][i]: r for v, reasons in stacks.reasons.items() for i, r in reasons.items()},
        "spec": spec.model_dump(mode="json"),
        "seed": seed,
    }
    return Output(tables, meta=meta)


def map_layers(spec: AnalysisSpec, stacks: Stacks, variants: list[str], head: int) -> list[int]:
    """The points ``analysis.umap_layers`` asks maps of, leaving out those degenerate in any variant."""
    n_points = len(stacks.labels[variants[0]])
    layers = (
        list(range(n_points))
        if spec.umap_layers == "all"
        else [head]
        if spec.umap_layers == "headline"
        else [l for l in spec.umap_layers if 0 <= l < n_points]
    )
    return [l for l in layers if not any(stacks.degenerate[v][l] for v in variants)]


def projection_key(store: RunStore, ps: str, spec: AnalysisSpec, seed: int, layers: list[int]) -> str:
    """What one layer's cached maps depend on: the captures, the map settings, the seed, the chain of layers (aligned
    maps) and the version of the fits."""
    settings = AnalysisSpec(
        umap_neighbors=spec.umap_neighbors, umap_min_dist=spec.umap_min_dist, map_alignment=spec.map_alignment
    )
    chain = {"chain": layers} if spec.map_alignment == "layers" else {}
    return analysis_fingerprint(store, ps, settings, seed, {**chain, "maps": MAPS_VERSION})[:16]


def project_layers(
    store: RunStore,
    stacks: Stacks,
    spec: AnalysisSpec,
    seed: int,
    ps: str,
    head: int,
    say: Callable[[str], None],
    engine: Engine,
    inputs: Any,
) -> pd.DataFrame:
    """Joint UMAP and PCA per layer, each layer cached in ``results/projections/`` as soon as it is done. Unaligned
    maps are one task per layer, all at once; aligned maps (``map_alignment = "layers"``) one after another in depth
    order, each started from the one before."""
    if maps_reason(stacks) or spec.umap_layers == []:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PROJECTION_COLUMNS.items()})
    layers = map_layers(spec, stacks, store.main_variants, head)
    aligned = spec.map_alignment == "layers"
    key = projection_key(store, ps, spec, seed, layers)
    path = {layer: results_dir(store.root) / "projections" / f"layer-{layer:03d}-{key}.parquet" for layer in layers}
    frames = {layer: frame for layer in layers if (frame := read_cached_parquet(path[layer])) is not None}

    def save(layer: int, frame: pd.DataFrame) -> None:
        say(f"projections: layer {layer + 1}/{len(stacks.labels[store.reference])}")
        with atomic_path(path[layer]) as tmp:
            frame.to_parquet(tmp, index=False)
        frames[layer] = frame

    todo = [layer for layer in layers if layer not in frames]
    if aligned:
        for i, layer in enumerate(layers):
            if layer not in frames:
                start = map_coordinates(frames[layers[i - 1]], list(stacks.arrays)) if i else None
                save(layer, engine.map(projection_task, [(layer, start)], inputs, what="a map task")[0])
    else:
        jobs = [(layer, None) for layer in todo]
        engine.map(projection_task, jobs, inputs, what="a map task", each=lambda i, f: save(todo[i], f))
    return pd.concat([frames[layer] for layer in layers], ignore_index=True)


def map_coordinates(frame: pd.DataFrame, variants: list[str]) -> dict[str, np.ndarray]:
    """One layer's maps as arrays, by method: (variants, concepts, 2) in ``variants`` order."""
    out = {}
    for method, part in frame.groupby("method"):
        by_variant = {v: g.sort_values("concept")[["x", "y"]].to_numpy() for v, g in part.groupby("variant")}
        out[str(method)] = np.stack([by_variant[v] for v in variants])
    return out


def projection_task(job: tuple[int, dict[str, np.ndarray] | None], inputs: DriftInputs) -> pd.DataFrame:
    """The joint UMAP and PCA of every variant at one point (started from the previous layer's maps when given)."""
    (layer, start), stacks, spec = job, inputs.stacks, inputs.at.spec
    start = start or {}
    variants = list(stacks.arrays)
    xs = [stacks.arrays[v][layer] for v in variants]
    cache_compiled_umap()  # no compiling UMAP again in every process (layerdrift.core.jit)
    umap_xy = joint_umap(
        xs, seed=inputs.at.seed, n_neighbors=spec.umap_neighbors, min_dist=spec.umap_min_dist, start=start.get("umap")
    )
    pca_xy, _ = joint_pca(xs, start=start.get("pca"))
    parts = []
    for method, xy in (("umap", umap_xy), ("pca", pca_xy)):
        for vi, v in enumerate(variants):
            parts.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "label": stacks.labels[v][layer],
                        "method": method,
                        "variant": v,
                        "concept": np.arange(xy.shape[1]),
                        "x": xy[vi, :, 0],
                        "y": xy[vi, :, 1],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def warm_up_maps(seed: int = 0) -> Path:
    """Compile UMAP's numba functions into the on-disk cache with every signature a run's maps use (a fit from a
    spectral start, one from the previous layer's layout): ``make setup`` runs it, so a first run does not compile.
    Returns the cache folder."""
    folder = cache_compiled_umap()
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(60, 16)) for _ in range(2)]
    first = joint_umap(xs, seed=seed)
    joint_umap(xs, seed=seed, start=first)
    return folder


class DriftRun:
    """The headline drift analyses of one run: every table from the cached last-token residual stacks."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        spec = ctx.config.analysis
        self.key = analysis_fingerprint(ctx.store, spec.prompt_set or ctx.store.prompt_sets[0], spec, ctx.config.seed)

    def run(self) -> Output:
        return analyze(self.ctx.store, self.ctx.config.analysis, self.ctx.config.seed, self.ctx.say, self.ctx.engine)


def summaries(results: Any, top_n: int = 10) -> dict[str, pd.DataFrame]:
    """The pair table, the category table and the top drifters at the headline layer."""
    t, meta = results.tables, results.meta
    pair_cols = ["pair", "mean", "std", "median", "min", "max", "ci_low", "ci_high", "jaccard_mean"]
    cat_cols = ["pair", "category", "mean", "median", "std", "max", "share_top_quartile", "share_vocabulary"]
    cat_cols += ["ci_low", "ci_high", "p_vs_rest", "p_vs_rest_floor", "verdict"]
    top = t["top_drifters"]
    titles = (
        f"Variant pairs: cosine drift at layer {meta['headline_label']} ({len(meta['terms'])} concepts, "
        "95% bootstrap CI over concepts)",
        "Categories: drift by pair (share = % of the top quartile / of the vocabulary; p = permutation test vs the "
        "rest; p_vs_rest_floor = the same test on log(drift / noise-floor drift))",
        f"Top {top_n} drifters per pair",
    )
    frames = (
        t["pairs"][pair_cols] if len(t["pairs"]) else pd.DataFrame(),
        t["categories"][cat_cols] if len(t["categories"]) else pd.DataFrame(),
        top[top["rank"] <= top_n][["pair", "rank", "term", "category", "drift", "percentile"]]
        if len(top)
        else pd.DataFrame(),
    )
    return dict(zip(titles, frames))


def p_text(p: float) -> str:
    """A p-value as a reader expects it: two significant digits."""
    return f"p = {p:.2g}"


def findings(results: Any) -> list[str]:
    """The headline findings as sentences: each pair's drift against the noise floor, and its category ordering
    against the same ordering in the floor and against the drift read in units of the floor."""
    t, meta = results.tables, results.meta
    if t["pairs"].empty:
        return []
    pairs = t["pairs"].set_index("pair")
    floors = pairs[pairs["floor"]]
    floor = floors.iloc[0] if len(floors) else None
    out = [] if floor is not None else ["This run has no noise-floor variant, so no finding is read against one."]
    for label, row in pairs[~pairs["floor"]].iterrows():
        out.append(pair_finding(label, row, floor, meta["headline_label"]))
        cats = t["categories"][t["categories"]["pair"] == label]
        if len(cats):
            floor_cats = t["categories"][t["categories"]["pair"] == floors.index[0]] if floor is not None else None
            out.append(category_finding(label, cats, floor_cats))
    return out


def pair_finding(label: str, row: pd.Series, floor: pd.Series | None, at: str) -> str:
    measure = "drifts" if not row.get("aligned", False) else "drifts (after Procrustes alignment)"
    drift = f"{label} {measure} {row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}] at {at}"
    if floor is None:
        return drift + "."
    times = row["mean"] / floor["mean"] if floor["mean"] > 0 else np.inf
    above = "above" if row["ci_low"] > floor["ci_high"] else "not clearly above"
    return f"{drift}, {times:.3g}x the noise floor {floor.name} ({floor['mean']:.4g}): {above} the floor."


def category_finding(label: str, cats: pd.DataFrame, floor_cats: pd.DataFrame | None) -> str:
    top = cats.loc[cats["mean"].idxmax()]
    rest = top["mean"] - top["diff_vs_rest"]
    text = (
        f"{label} moves {top['category']} concepts most ({top['mean']:.4g} vs {rest:.4g} for the rest, "
        f"{p_text(top['p_vs_rest'])})"
    )
    if floor_cats is None or floor_cats.empty:
        return text + f": {top['verdict']}."
    in_floor = floor_cats.set_index("category").loc[top["category"]]
    return (
        f"{text}; the noise floor {in_floor['pair']} {floor_ordering(in_floor)}; in units of the floor "
        f"{top['category']} differs from the rest by {top['log_ratio_diff_vs_rest']:+.3g} in log ratio "
        f"({p_text(top['p_vs_rest_floor'])}): {top['verdict']}."
    )


def floor_ordering(row: pd.Series) -> str:
    """Whether the noise floor moves a category more than the rest too (its own permutation test)."""
    test = p_text(row["p_vs_rest"])
    if row["diff_vs_rest"] <= 0:
        return f"does not move it more than the rest ({test})"
    if row["p_vs_rest"] < SIGNIFICANCE:
        return f"moves it more than the rest too ({test})"
    return f"leans the same way, not significantly ({test})"


EXPERIMENT = Experiment(
    name=RESULT_SET,
    version="5",
    settings=lambda config: config.analysis,
    runner=DriftRun,
    tables=TABLES,
    check=check_analysis_inputs,
    summaries=summaries,
    findings=findings,
)
