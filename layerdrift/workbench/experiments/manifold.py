"""Feature-manifold probes: SMDS at every residual point and aligned token of templated probe sets, per variant.

Flow, per probe set and variant (one model in memory at a time)::

    alignment of the set's prompts in the variant's tokenizer      RUN/manifold/alignment/VARIANT--SET.json
    residual stream at every aligned slot of every kept prompt
      (a capture job in the store: RUN/captures/VARIANT/probe-SET/slots/HOOK, (n, slots, d))
    cross-validated SMDS of every (point, slot) cell: ridge and orthonormal maps, a permuted-label
      chance level, reuse of the source token's map, and the all-rows maps' subspace similarity
                                                                   RUN/manifold/scores/VARIANT--SET-KEY.npz
    out-of-fold 2-D projections of every cell                      RUN/manifold/projections.npz (VARIANT/SET)
    tables: manifold_scores, manifold_similarity
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from layerdrift.analyses.manifold import cell_drift, default_components, smds_cells, subspace_similarity
from layerdrift.concepts.probes import ProbeSet, load_probe_set
from layerdrift.core.files import read_cached_json, read_cached_npz, write_json_atomic, write_npz_atomic
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import point_label, residual_hook_names
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.probe_alignment import ProbeAlignment, align_probes
from layerdrift.workbench.config import ExperimentConfig, ManifoldSpec
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output
from layerdrift.workbench.models.loading import LoadedVariant

MANIFOLD = "manifold"
POSITION = "slots"
CELL_BUDGET = 1.5e8  # bytes of working memory per SMDS batch; whole layers are batched up to this


def manifold_sets(spec: ManifoldSpec, seed: int) -> list[ProbeSet]:
    """Load and check the configured probe sets (before anything is captured)."""
    sets = [load_probe_set(s, spec.n_prompts, seed) for s in spec.sets]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise LayerdriftError(f"manifold.sets lists a set twice ({names}); give each file a distinct name.")
    for s in sets:
        if len(s.items) < 2 * spec.folds:
            raise LayerdriftError(
                f"probe set '{s.name}' has {len(s.items)} items, too few for {spec.folds}-fold "
                "cross-validation; add items or lower manifold.folds."
            )
        if (spec.shape or s.shape) in ("circular", "discrete_circular") and s.period is None:
            raise LayerdriftError(
                f"manifold.shape = '{spec.shape}' needs a period, and probe set '{s.name}' has "
                "none; leave manifold.shape unset or give the set a period."
            )
    return sets


def manifold_variants(config: ExperimentConfig) -> tuple[list[str], str]:
    """(variants to probe, the one the difference maps subtract): by default the compared variants and the noise-floor
    variants, whose score differences from the reference are the threshold the others' must exceed."""
    assert config.manifold is not None
    floors = [v.name for v in config.variants if v.noise_floor]
    variants = config.manifold.variants or [*config.non_floor_variants(), *floors]
    reference = config.manifold.reference or (config.reference if config.reference in variants else variants[0])
    if reference not in variants:
        variants = [reference, *variants]
    return variants, reference


class ManifoldRun:
    """One feature-manifold experiment of a config on a run store."""

    def __init__(self, ctx: RunContext):
        config, store = ctx.config, ctx.store
        self.ctx = ctx
        assert config.manifold is not None
        self.config, self.store = config, store
        self.spec: ManifoldSpec = config.manifold
        self.sets = manifold_sets(self.spec, config.seed)
        self.variants, self.reference = manifold_variants(config)
        self.floors = [v for v in self.variants if config.variant(v).noise_floor]
        self.root = store.root / MANIFOLD
        self.identity = {v: ctx.identity(v) for v in self.variants}
        self.key = fingerprint(
            {
                "spec": self.spec.model_dump(mode="json"),
                "sets": [self.set_identity(s) for s in self.sets],
                "variants": self.identity,
                "seed": config.seed,
            }
        )

    @staticmethod
    def set_identity(s: ProbeSet) -> dict[str, Any]:
        return {
            "template": s.template,
            "shape": s.shape,
            "period": s.period,
            "landmarks": s.landmarks,
            "items": [[i.fields, i.label] for i in s.items],
        }

    def shape(self, s: ProbeSet) -> tuple[str, int]:
        shape = self.spec.shape or s.shape
        return shape, self.spec.components or default_components(shape, s.labels)  # type: ignore[arg-type]

    # ---- step 1: alignment and capture -----------------------------------------------------
    def align(self, s: ProbeSet, name: str, model: Callable[[], LoadedVariant]) -> ProbeAlignment:
        path = self.root / "alignment" / f"{name}--{s.name}.json"
        spec = self.config.variant(name)
        key = fingerprint({"variant": self.identity[name], "set": self.set_identity(s)})
        cached = read_cached_json(path, key)
        if cached is not None:
            return ProbeAlignment.from_json(cached["alignment"])
        alignment = align_probes(model().tokenizer, s, spec.prepend_bos, f"variant '{name}'")
        write_json_atomic(path, {"fingerprint": key, "alignment": alignment.to_json()})
        return alignment

    def capture(
        self, s: ProbeSet, name: str, model: Callable[[], LoadedVariant], progress: Any
    ) -> tuple[ProbeAlignment, list[str]]:
        """The alignment and the residual points captured at its slots (a store capture job)."""
        alignment = self.align(s, name, model)
        prompt_set = f"probe-{s.name}"
        hooks = residual_hook_names(self.store.n_layers(name))
        key = fingerprint(
            {"variant": self.identity[name], "ids": alignment.ids, "index": alignment.index, "hooks": hooks}
        )
        self.ctx.capture_sequences(
            name,
            prompt_set,
            key,
            n=len(alignment.ids),
            batch_size=self.spec.batch_size,
            model=model,
            sequences=lambda _: alignment.ids,
            hooks=hooks,
            position=POSITION,
            chosen=alignment.index,
            residual_points=hooks,
            slots=alignment.slots,
            kind="manifold",
        )
        return alignment, hooks

    # ---- step 2: SMDS of every cell --------------------------------------------------------
    def score(
        self, s: ProbeSet, name: str, alignment: ProbeAlignment, hooks: list[str], progress: Any
    ) -> dict[str, np.ndarray]:
        """Scores (points, slots), projections (points, slots, n, k) and subspace similarity (points, slots, slots);
        cached
        .npz."""
        shape, k = self.shape(s)
        labels = s.labels[alignment.kept]
        source = alignment.landmarks["source"]
        key = fingerprint(
            {
                "capture": self.store.manifest["captures"][f"{name}/probe-{s.name}"]["fingerprint"],
                "labels": labels.tolist(),
                "shape": shape,
                "k": k,
                "folds": self.spec.folds,
                "ridge": self.spec.ridge,
                "seed": self.config.seed,
                "source": source,
            }
        )[:20]
        path = self.root / "scores" / f"{name}--{s.name}-{key}.npz"
        cached = read_cached_npz(path)
        if cached is not None:
            return cached
        n_slots, n = len(alignment.slots), len(labels)
        acts = [self.store.activations(name, f"probe-{s.name}", h, POSITION) for h in hooks]  # each (n, slots, d)
        d = acts[0].shape[-1]
        per_layer = (
            4 * n_slots * n * (3 * d + 3 * (self.spec.folds + 1) * n)
        )  # activations x3, fold systems, kernel and distances (float32)
        step = max(1, int(CELL_BUDGET // per_layer))
        parts: dict[str, list[np.ndarray]] = {}
        task = progress.add_task(f"SMDS {name} ({s.name})", total=len(hooks)) if progress else None
        for start in range(0, len(hooks), step):
            chunk = np.concatenate([np.swapaxes(a, 0, 1) for a in acts[start : start + step]])  # (layers * slots, n, d)
            layers = chunk.shape[0] // n_slots
            reuse = np.repeat(np.arange(layers) * n_slots + source, n_slots)
            res = smds_cells(
                chunk, labels, shape, s.period, k, self.spec.folds, self.spec.ridge, self.config.seed, reuse
            )  # type: ignore[arg-type]
            maps = res.maps.reshape(layers, n_slots, d, k)
            for field, value in (
                ("score", res.score),
                ("score_orthonormal", res.score_orthonormal),
                ("score_chance", res.score_chance),
                ("score_reuse", res.score_reuse),
            ):
                parts.setdefault(field, []).append(np.asarray(value).reshape(layers, n_slots))
            parts.setdefault("predicted", []).append(res.predicted.reshape(layers, n_slots, n, k).astype(np.float32))
            parts.setdefault("similarity", []).append(np.stack([subspace_similarity(m) for m in maps]))
            if progress:
                progress.update(task, advance=layers)
        out = {f: np.concatenate(v) for f, v in parts.items()}
        out["labels"] = labels
        write_npz_atomic(path, out)
        return out

    # ---- the whole experiment -----------------------------------------------------------
    def run(self) -> Output:
        """Capture and score every probe set in every variant (one piece of work per variant), then the tables."""
        results: dict[tuple[str, str], tuple[ProbeAlignment, list[str], dict[str, np.ndarray]]] = {}
        for v, per_set in zip(
            self.variants, self.ctx.pieces(self, "variant_piece", [(v,) for v in self.variants], True)
        ):
            for s in self.sets:
                results[(v, s.name)] = per_set[s.name]
                rejected = per_set[s.name][0].rejected
                if rejected:
                    self.ctx.say(
                        f"manifold probes: {len(rejected)} of {len(s.items)} '{s.name}' prompts left out in {v} "
                        f"(first: {rejected[0]['prompt']!r}, {rejected[0]['reason']})"
                    )
        return Output(self.tables(results), arrays={"projections": self.projection_arrays(results)})

    def variant_piece(self, v: str) -> dict[str, tuple[ProbeAlignment, list[str], dict[str, np.ndarray]]]:
        """One variant: every probe set aligned and captured with its model loaded once, then scored (no model)."""
        self.ctx.say(f"manifold probes: {v}")
        captured = {}
        with self.ctx.model(v) as model:
            for s in self.sets:
                captured[s.name] = self.capture(s, v, model, self.ctx.progress)
        return {s.name: (*captured[s.name], self.score(s, v, *captured[s.name], self.ctx.progress)) for s in self.sets}

    @staticmethod
    def projection_arrays(
        results: dict[tuple[str, str], tuple[ProbeAlignment, list[str], dict[str, np.ndarray]]],
    ) -> dict[str, np.ndarray]:
        """Out-of-fold coordinates of every cell and the labels (keys VARIANT/SET and VARIANT/SET/labels)."""
        arrays = {}
        for (v, s), (_, _, res) in results.items():
            arrays[f"{v}/{s}"] = res["predicted"]
            arrays[f"{v}/{s}/labels"] = res["labels"]
        return arrays

    def drift_from_reference(self, probe_set: str, v: str, results: dict) -> np.ndarray | None:
        """Mean activation drift (points, slots) of a variant from the reference at every cell, over the prompts both
        keep; None where the cells do not correspond (another tokenizer's tokens, depth or width)."""
        (al_v, hooks_v, _), (al_r, hooks_r, _) = results[(v, probe_set)], results[(self.reference, probe_set)]
        if al_v.slots != al_r.slots or len(hooks_v) != len(hooks_r):
            return None
        both = sorted(set(al_v.kept) & set(al_r.kept))
        iv = [al_v.kept.index(i) for i in both]
        ir = [al_r.kept.index(i) for i in both]
        grid = []
        for hv, hr in zip(hooks_v, hooks_r):
            a = self.store.activations(v, f"probe-{probe_set}", hv, POSITION)[iv]
            b = self.store.activations(self.reference, f"probe-{probe_set}", hr, POSITION)[ir]
            if a.shape[-1] != b.shape[-1]:
                return None
            grid.append(cell_drift(a, b))
        return np.stack(grid)

    def cell_comparisons(self, results: dict) -> dict[tuple[str, str], dict[str, np.ndarray]]:
        """Per (variant, set), grids (points, slots) of ``score_diff`` (score minus the reference's), ``drift`` (mean
        activation drift from the reference) and ``floor_diff`` (the largest |score_diff| of a noise-floor variant
        at that cell: the threshold a difference must exceed); NaN where they do not apply."""
        out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        for (v, probe_set), (_, _, res) in results.items():
            nan = np.full_like(res["score"], np.nan, dtype=np.float64)
            drift = self.drift_from_reference(probe_set, v, results)
            ref = results[(self.reference, probe_set)][2]["score"]
            out[(v, probe_set)] = {
                "score_diff": res["score"] - ref if drift is not None else nan,
                "drift": drift if drift is not None else nan,
            }
        for (v, probe_set), grids in out.items():
            floors = [np.abs(out[(f, probe_set)]["score_diff"]) for f in self.floors if f != v]
            usable = v not in self.floors and v != self.reference and floors
            grids["floor_diff"] = np.fmax.reduce(floors) if usable else np.full_like(grids["drift"], np.nan)
        return out

    def tables(
        self, results: dict[tuple[str, str], tuple[ProbeAlignment, list[str], dict[str, np.ndarray]]]
    ) -> dict[str, pd.DataFrame]:
        score_rows, sim_rows = [], []
        by_name = {s.name: s for s in self.sets}
        compared = self.cell_comparisons(results)
        for (v, set_name), (alignment, hooks, res) in results.items():
            shape, k = self.shape(by_name[set_name])
            marks = {slot: name for name, slot in alignment.landmarks.items()}
            for p, hook in enumerate(hooks):
                label = point_label(hook)
                for t, slot in enumerate(alignment.slots):
                    score_rows.append(
                        {
                            "set": set_name,
                            "variant": v,
                            "point": p,
                            "label": label,
                            "slot": t,
                            "slot_label": slot,
                            "landmark": marks.get(t, ""),
                            "exact_share": alignment.exact[t],
                            "score": float(res["score"][p, t]),
                            "score_orthonormal": float(res["score_orthonormal"][p, t]),
                            "score_chance": float(res["score_chance"][p, t]),
                            "score_reuse": float(res["score_reuse"][p, t]),
                            **{c: float(grid[p, t]) for c, grid in compared[(v, set_name)].items()},
                            "shape": shape,
                            "period": by_name[set_name].period,
                            "components": k,
                            "n_prompts": len(alignment.kept),
                        }
                    )
                sim = res["similarity"][p]
                for a in range(sim.shape[0]):
                    for b in range(sim.shape[1]):
                        sim_rows.append(
                            {
                                "set": set_name,
                                "variant": v,
                                "point": p,
                                "label": label,
                                "slot_a": a,
                                "slot_b": b,
                                "similarity": float(sim[a, b]),
                            }
                        )
        scores = pd.DataFrame(score_rows)
        scores["reference"] = self.reference
        scores["floor"] = scores["variant"].isin(self.floors)
        scores["beyond_floor"] = scores["score_diff"].abs() > scores["floor_diff"]  # False where there is no floor
        return {"manifold_scores": scores, "manifold_similarity": pd.DataFrame(sim_rows)}


def manifold_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per set and variant: the best cell, the landmarks' best scores, the rigid check and the change from the
    reference."""
    rows = []
    for (probe_set, variant), g in scores.groupby(["set", "variant"], sort=False):
        best = g.loc[g["score"].idxmax()]
        row = {
            "set": probe_set,
            "variant": variant,
            "best score": float(best["score"]),
            "at point": best["label"],
            "at token": best["slot_label"],
            "chance": float(g["score_chance"].median()),
        }
        for lm in ("source", "destination", "distractor"):
            t = g[g["landmark"] == lm]
            if len(t):
                top = t.loc[t["score"].idxmax()]
                row[f"{lm} best (point)"] = f"{top['score']:.3f} ({top['label']})"
        dest = g[g["landmark"] == "destination"]
        if len(dest):
            top = dest.loc[dest["score"].idxmax()]
            row["destination orthonormal"] = float(top["score_orthonormal"])
            row["destination reuse"] = float(top["score_reuse"])
        ref = scores[(scores["set"] == probe_set) & (scores["variant"] == g["reference"].iloc[0])]
        if variant != g["reference"].iloc[0] and ref["slot_label"].tolist() == g["slot_label"].tolist():
            diff = g["score"].to_numpy() - ref["score"].to_numpy()
            row["mean |Δ| vs reference"] = float(np.nanmean(np.abs(diff)))
            row["max |Δ|"] = float(np.nanmax(np.abs(diff)))
        if "floor_diff" in g and g["floor_diff"].notna().any():
            row["cells beyond the floor"] = f"{int(g['beyond_floor'].sum())} of {len(g)}"
        rows.append(row)
    return pd.DataFrame(rows)


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    scores = results.tables.get("manifold_scores")
    if scores is None or not len(scores):
        return {}
    title = (
        "Feature manifolds: cross-validated SMDS score (1 − scale-normalised stress; chance = permuted labels; "
        "Δ = change from the reference over every cell)"
    )
    return {title: manifold_summary(scores)}


def cell_text(row: pd.Series) -> str:
    return f"at layer {row['label']}, token {row['slot_label']!r}"


def variant_finding(g: pd.DataFrame, probe_set: str) -> str:
    """One variant's largest score change, its activation drift there, and how many cells change beyond the floor."""
    v, worst = g["variant"].iloc[0], g.loc[g["score_diff"].abs().idxmax()]
    text = (
        f"{v} changes the '{probe_set}' manifold score by up to {worst['score_diff']:+.3f} ({cell_text(worst)}, "
        f"where its activations drift {worst['drift']:.3g})"
    )
    if g["floor"].iloc[0]:
        return text + ": a noise-floor variant, so this is how fragile the score itself is."
    if g["floor_diff"].isna().all():
        return text + "; the run has no noise-floor variant to read it against."
    beyond = g[g["beyond_floor"]]
    text += f"; {len(beyond)} of {len(g)} cells differ by more than a noise-floor variant does at the same cell"
    if beyond.empty:
        return text + ": no change beyond the floor."
    top = beyond.loc[beyond["score_diff"].abs().idxmax()]
    return (
        f"{text}; the largest such change is {top['score_diff']:+.3f} {cell_text(top)} (floor |Δ| "
        f"{top['floor_diff']:.3f}, activation drift {top['drift']:.3g})."
    )


def findings(results: Any) -> list[str]:
    """Per probe set and variant: the largest score change against the noise floor at the same cell."""
    scores = results.tables.get("manifold_scores")
    if scores is None or scores.empty or "score_diff" not in scores:
        return []
    out = []
    for (probe_set, v), g in scores.groupby(["set", "variant"], sort=False):
        if v != g["reference"].iloc[0] and g["score_diff"].notna().any():
            out.append(variant_finding(g, probe_set))
    return out


EXPERIMENT = Experiment(
    name="manifold",
    version="2",
    settings=lambda config: config.manifold,
    runner=ManifoldRun,
    tables=("manifold_scores", "manifold_similarity"),
    artifacts=("projections",),
    check=lambda config: manifold_sets(config.manifold, config.seed),
    summaries=summaries,
    findings=findings,
)
