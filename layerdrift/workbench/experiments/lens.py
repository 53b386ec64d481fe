"""Drift in output space, and where along depth each pair's difference starts.

Per variant, its head (final norm and unembedding) is read once from its model and kept in ``RUN/heads``; everything
else is computed from the cached last-token residuals (``analyses/lens.py``):

- ``lens_own``, ``lens_top``: each variant through its own head at every residual point: entropy, KL from its own
  final distribution, and the top-k tokens (what the variant would say at this layer);
- ``lens_common``, ``lens_layers``: every pair through the reference's head, JS per prompt and point, and its mean
  with a bootstrap CI per point;
- ``output_drift``, ``output_pairs``, ``output_categories``: the pairs' actual next-token distributions compared
  (JS, KL, top-1 agreement, rank of a's top token in b), per prompt, and per pair and category with bootstrap CIs,
  next to the cosine drift of the analyses;
- ``localisation``, ``concept_onsets``: per pair and depth curve (cosine drift, 1 - Jaccard, 1 - CKA, common-lens
  JS) its onset over the noise floor, its break and its half-way point with bootstrap CIs (``analyses/localisation``),
  and each concept's own onset.

A variant whose tokenizer is not the reference's gets its own lens only, with a note: its vocabulary does not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, pairwise
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerdrift.analyses import lens as lens_math
from layerdrift.analyses import localisation as loc
from layerdrift.analyses.drift import drift_by_layer
from layerdrift.analyses.headline import SIGNIFICANCE
from layerdrift.analyses.lens import LensHead
from layerdrift.analyses.trajectory import concentration_test, lead_lag
from layerdrift.analyses.uncertainty import bootstrap_mean_ci
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import FINAL_NORM_HOOK, point_phrase
from layerdrift.errors import LayerdriftError
from layerdrift.training.series import series_step
from layerdrift.workbench.config import LensSpec, TrajectorySpec
from layerdrift.workbench.experiments import drift, patching
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.drift import Pair, Stacks, variant_pairs
from layerdrift.workbench.experiments.protocol import Experiment, Output
from layerdrift.workbench.experiments.trajectory import concentration_phrase, trajectory_settings
from layerdrift.workbench.models.loading import free_memory, load_hf_model
from layerdrift.workbench.store.heads import keep_variant_head, read_head, read_tokens
from layerdrift.workbench.store.results import cached_result_set

RESULT_SET = "lens"
TABLES = (
    "lens_own",
    "lens_top",
    "lens_common",
    "lens_layers",
    "output_drift",
    "output_pairs",
    "output_categories",
    "localisation",
    "concept_onsets",
    "behaviour_velocity",
    "velocity_lag",
)
NORM_CHECK_TOLERANCE = 0.05  # median relative error of the head's norm against the captured final norm
CURVES = {
    "drift": "cosine drift",
    "jaccard": "1 - Jaccard",
    "cka": "1 - CKA",
    "lens_js": "common-lens JS",
}  # and "patching": the patching effect of the residual stream at every position, where patching ran


@dataclass(frozen=True)
class Heads:
    """Every variant's head (variants whose weights have one sha256 share one object), its vocabulary as text, and its
    tokenizer's fingerprint."""

    heads: dict[str, LensHead]
    tokens: dict[str, list[str]]
    tokenizer: dict[str, str]

    def same_vocabulary(self, a: str, b: str) -> bool:
        return self.tokenizer[a] == self.tokenizer[b]


class LensRun:
    """The lens read-outs, output-space drift and localisation of one run."""

    def __init__(self, ctx: RunContext):
        self.ctx, self.store, self.config = ctx, ctx.store, ctx.config
        assert ctx.config.lens is not None
        self.spec: LensSpec = ctx.config.lens
        self.prompt_set = ctx.config.analysis.prompt_set or ctx.store.prompt_sets[0]
        self.variants = ctx.store.main_variants
        # the checkpoints before each series' last (a main variant): their next-token distributions give the velocity
        self.checkpoints = [v for members in ctx.store.series.values() for v in members if v not in self.variants]
        self.identity = {v: ctx.identity(v) for v in self.variants + self.checkpoints}
        self.drift_key = f"{drift.EXPERIMENT.version}:{drift.DriftRun(ctx).key}"
        self.n_perm = (trajectory_settings(ctx.config) or TrajectorySpec()).n_perm
        self.patching_key = (
            f"{patching.EXPERIMENT.version}:{patching.PatchingRun(ctx).key}" if ctx.config.patching else None
        )
        self.key = fingerprint(
            {
                "spec": self.spec.model_dump(mode="json"),
                "variants": self.identity,
                "series": ctx.store.series,
                "n_perm": self.n_perm,
                "analysis": self.drift_key,
                "patching": self.patching_key,
            }
        )

    # ---- heads ------------------------------------------------------------------------------------------------
    def head_piece(self, v: str) -> None:
        """Read one variant's head from its model and keep it (and its vocabulary) in the run folder."""
        self.ctx.say(f"lens: reading the head of {v}")
        model, tokenizer, info = load_hf_model(self.config.variant(v), self.config.device, self.config.dtype)
        try:
            keep_variant_head(self.store.root, v, self.identity[v], model, tokenizer, info["tokenizer_sha256"])
        finally:
            del model
            free_memory()

    def heads(self) -> Heads:
        """Every variant's head, read from its model only when the run folder does not hold it intact."""
        root = self.store.root
        variants = list(self.identity)
        tokenizer = {v: self.store.manifest["captures"][f"{v}/{self.prompt_set}"]["tokenizer_sha256"] for v in variants}
        stored = {v: read_head(root, v, self.identity[v]) for v in variants}
        words = {sha: read_tokens(root, sha) for sha in set(tokenizer.values())}
        todo = [v for v in variants if stored[v] is None or words[tokenizer[v]] is None]
        self.ctx.pieces(self, "head_piece", [(v,) for v in todo], loads_model=True)
        for v in todo:  # read back what the pieces kept, once
            stored[v] = read_head(root, v, self.identity[v])
            words[tokenizer[v]] = words[tokenizer[v]] or read_tokens(root, tokenizer[v])
        heads, tokens, by_sha = {}, {}, {}
        for v in variants:
            if stored[v] is None or words[tokenizer[v]] is None:
                raise LayerdriftError(
                    f"the lens head of variant '{v}' could not be read back from {str(root / 'heads')!r} after it was "
                    "written; check the folder's storage and run again."
                )
            head, sha = stored[v]
            heads[v] = by_sha.setdefault(sha, head)  # one object per distinct head
            tokens[v] = words[tokenizer[v]]
        return Heads(heads, tokens, tokenizer)

    # ---- the run ----------------------------------------------------------------------------------------------
    def run(self) -> Output:
        analysis = cached_result_set(self.store.root, drift.RESULT_SET, self.drift_key)
        if analysis is None:
            raise LayerdriftError(
                "the lens reads the analyses' drift tables, but they are not in the run folder; run `layerdrift run` "
                "with the analysis section."
            )
        heads = self.heads()
        stacks = Stacks.read(self.store, self.prompt_set)
        states = {**stacks.arrays, **{v: self.states(v) for v in self.checkpoints}}
        normalised = self.normalised()
        notes = self.check_norms(heads, states, normalised)
        info = self.store.manifest["prompt_sets"][self.prompt_set]
        concepts = drift.Concepts(info["terms"], info["categories"])
        labels = stacks.labels[self.store.reference]
        pairs = variant_pairs(self.store)
        comparable, skipped = self.comparable(pairs, heads)
        notes += skipped
        self.ctx.say("lens: read-outs at every point")
        common_pairs = [p for p in comparable if p in self.same_depth(pairs, stacks)]
        readout = lens_math.read_out(
            heads.heads,
            {v: stacks.arrays[v] for v in self.variants},
            normalised,
            heads.heads[self.store.reference],
            [(p.a, p.b) for p in common_pairs],
            self.spec.top_k,
            self.spec.block_rows,
            self.device,
        )
        own = readout.own
        common = {p: readout.common[(p.a, p.b)] for p in common_pairs}
        self.ctx.say("lens: next-token distributions")
        compared = lens_math.compare_outputs(
            heads.heads,
            {v: stacks.arrays[v][-1] for v in self.variants},
            {v: normalised[v][-1] for v in self.variants},
            [(p.a, p.b) for p in comparable],
            self.spec.block_rows,
            self.device,
        )
        behaviour = {p: compared[(p.a, p.b)] for p in comparable}
        tables = {
            **own_tables(own, heads, stacks, concepts),
            **common_tables(common, labels, concepts, self.config.analysis.n_boot, self.config.seed),
            **output_tables(behaviour, analysis.tables, concepts, self.config.analysis.n_boot, self.config.seed),
            **self.localisation(pairs, stacks, analysis.tables, common, concepts),
        }
        velocity_tables, skipped_series = self.velocities(heads, states, normalised, behaviour)
        tables |= velocity_tables
        notes += skipped_series
        meta = {"notes": notes, "labels": labels, "reference": self.store.reference, "top_k": self.spec.top_k}
        return Output(tables, meta=meta)

    def normalised(self) -> dict[str, list[bool]]:
        """Per variant and point, whether the point is the final norm's output already (the lens then only
        unembeds)."""
        out = {}
        for v in self.identity:
            points = self.store.residual_points(v, self.prompt_set)
            out[v] = [p == FINAL_NORM_HOOK for p in points]
        return out

    def states(self, v: str) -> np.ndarray:
        """A variant's last-token residual stream at every point: (points, n, d)."""
        points = self.store.residual_points(v, self.prompt_set)
        return np.stack([self.store.activations(v, self.prompt_set, p, "last") for p in points]).astype(np.float32)

    def check_norms(self, heads: Heads, states: dict[str, np.ndarray], normalised: dict[str, list[bool]]) -> list[str]:
        """The head's norm applied to the last block's output must give the captured final norm's output: else the
        head was read wrongly, and nothing is written."""
        notes = []
        for v in self.identity:
            if not normalised[v][-1]:
                notes.append(f"{v}: the final norm was not captured, so its head's norm could not be checked.")
                continue
            x = torch.as_tensor(states[v][-2])
            want = torch.as_tensor(states[v][-1])
            got = heads.heads[v].normalise(x).double()
            err = float(((got - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-12)).median())
            if not err <= NORM_CHECK_TOLERANCE:
                raise LayerdriftError(
                    f"the lens head read from variant '{v}' does not reproduce its captured final norm (median "
                    f"relative error {err:.3g}), so its read-outs would be wrong; nothing was written (report this "
                    "model's architecture)."
                )
        return notes

    def comparable(self, pairs: list[Pair], heads: Heads) -> tuple[list[Pair], list[str]]:
        """The pairs whose variants share the reference's vocabulary (and so can be compared in output space), and a
        note for each variant that does not."""
        ref = self.store.reference
        other = [v for v in self.variants if not heads.same_vocabulary(v, ref)]
        notes = [
            f"{v}: its tokenizer is not the reference's, so its vocabulary does not match and it has its own lens "
            "only (no common-lens or next-token comparisons)."
            for v in other
        ]
        return [p for p in pairs if p.a not in other and p.b not in other], notes

    def same_depth(self, pairs: list[Pair], stacks: Stacks) -> list[Pair]:
        """Pairs whose variants have the reference's points and width (the common lens compares point by point)."""
        shape = stacks.arrays[self.store.reference].shape
        return [
            p
            for p in pairs
            if stacks.arrays[p.a].shape[::2] == shape[::2] and stacks.arrays[p.b].shape[::2] == shape[::2]
        ]

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() and self.config.device in ("auto", "cuda") else "cpu"

    # ---- behavioural velocity ---------------------------------------------------------------------------------
    def velocities(
        self,
        heads: Heads,
        states: dict[str, np.ndarray],
        normalised: dict[str, list[bool]],
        behaviour: dict[Pair, dict[str, np.ndarray]],
    ) -> tuple[dict[str, pd.DataFrame], list[str]]:
        """Along each checkpoint series: the JS between every two checkpoints' next-token distributions, its velocity
        with the early-concentration test, and its lead or lag against the representational velocity, prompt by
        prompt; and a note for each series left out because a checkpoint's tokenizer is not the reference's."""
        ref = self.store.reference
        floor = next((out["js"].mean() for p, out in behaviour.items() if p.floor), np.nan)
        n_boot, seed = self.config.analysis.n_boot, self.config.seed
        rows, lags, notes = [], [], []
        for name, members in self.store.series.items():
            other = [v for v in members if not heads.same_vocabulary(v, ref)]
            if other:
                notes.append(
                    f"series {name}: checkpoint {other[0]} has another tokenizer than the reference, so its next-token "
                    "velocity is not computed (the vocabularies do not match)."
                )
                continue
            self.ctx.say(f"lens: next-token velocity along series {name}")
            pairs = list(combinations(members, 2))
            compared = lens_math.compare_outputs(
                heads.heads,
                {v: states[v][-1] for v in members},
                {v: normalised[v][-1] for v in members},
                pairs,
                self.spec.block_rows,
                self.device,
            )
            series_rows, lag = series_velocity(name, members, compared, states, floor, self.n_perm, n_boot, seed)
            rows += series_rows
            lags.append(lag)
        return {"behaviour_velocity": pd.DataFrame(rows), "velocity_lag": pd.DataFrame(lags)}, notes

    # ---- localisation -----------------------------------------------------------------------------------------
    def localisation(
        self,
        pairs: list[Pair],
        stacks: Stacks,
        tables: dict[str, pd.DataFrame],
        common: dict[Pair, np.ndarray],
        concepts: drift.Concepts,
    ) -> dict[str, pd.DataFrame]:
        """Onset, break and half-way point of every depth curve of every pair of the reference's depth, read against
        the first noise-floor pair (pairs with a floor variant are read against zero)."""
        spec, seed = self.config.analysis, self.config.seed
        labels = stacks.labels[self.store.reference]
        n = len(concepts.terms)
        idx = loc.resamples(n, spec.n_boot, seed)
        same = self.same_depth(pairs, stacks)
        floor = next((p for p in same if p.floor), None)
        curves = {p: self.curves(p, stacks, tables["drift"], common) for p in same}
        rows, onset_rows = [], []
        for p in same:
            base = None if p.floor or floor is None else curves[floor]
            for name, values in curves[p].items():
                against = None if base is None else base.get(name)
                if name == "cka":
                    means = values(idx)
                    thresholds = against(idx) if against is not None else np.zeros_like(means)
                else:
                    means = loc.mean_curves(values, idx)
                    thresholds = loc.floor_thresholds(against, idx, len(labels))
                    onsets = loc.concept_onsets(values, against)
                    onset_rows.append(concept_onset_frame(p, name, onsets, labels, concepts))
                row = loc.locate(means, thresholds)
                rows.append(
                    {
                        "pair": p.label,
                        "floor": p.floor,
                        "curve": name,
                        "measure": CURVES[name],
                        "against": floor.label if base is not None else "zero",
                        **row,
                        **{
                            f"{k}{end}_label": point_name(labels, row[f"{k}{end}"])
                            for k in ("onset", "break", "half")
                            for end in ("", "_low", "_high")
                        },
                    }
                )
        frame = pd.DataFrame(rows + self.patching_rows(pairs, labels))
        onsets = pd.concat(onset_rows, ignore_index=True) if onset_rows else pd.DataFrame()
        return {"localisation": frame, "concept_onsets": onsets}

    def patching_rows(self, pairs: list[Pair], labels: list[str]) -> list[dict[str, Any]]:
        """The patching effect's onset, break and half-way block for each patched pair (the patching experiment's
        ``patching_localisation``, on its own prompts) as rows of the localisation table."""
        found = self.patching_key and cached_result_set(self.store.root, patching.EXPERIMENT.name, self.patching_key)
        if not found:
            return []
        by_label = {label: p for p in pairs for label in (p.label, f"{p.b}→{p.a}")}
        rows = []
        for _, r in found.tables["patching_localisation"].iterrows():
            if r["pair"] not in by_label or r["component"] != "resid":
                continue
            located = {k: r[k] for k in ("final", "threshold_final", "onset_defined")}
            for k in ("onset", "break", "half"):
                for end in ("", "_low", "_high"):
                    block = r[f"{k}{end}"]
                    found_at = not np.isnan(block) and str(int(block)) in labels
                    at = float(labels.index(str(int(block)))) if found_at else np.nan
                    located[f"{k}{end}"], located[f"{k}{end}_label"] = at, point_name(labels, at)
            rows.append(
                {
                    "pair": by_label[r["pair"]].label,
                    "floor": False,
                    "curve": "patching",
                    "measure": f"patching effect ({r['direction']})",
                    "against": "zero",
                    **located,
                }
            )
        return rows

    def curves(
        self, pair: Pair, stacks: Stacks, drift_table: pd.DataFrame, common: dict[Pair, np.ndarray]
    ) -> dict[str, Any]:
        """A pair's depth curves: per-prompt (n, points) arrays, and for CKA a function of the resamples."""
        rows = drift_table[drift_table["pair"] == pair.label]
        out: dict[str, Any] = {}
        if len(rows):
            out["drift"] = rows.pivot(index="concept", columns="layer", values="drift").to_numpy()
            out["jaccard"] = 1.0 - rows.pivot(index="concept", columns="layer", values="jaccard").to_numpy()
        a, b = stacks.arrays[pair.a], stacks.arrays[pair.b]
        undefined = stacks.degenerate[pair.a] | stacks.degenerate[pair.b]  # the prompts do not vary: no CKA there
        out["cka"] = lambda idx: np.where(undefined, np.nan, loc.cka_curves(a, b, idx))
        if pair in common:
            out["lens_js"] = common[pair].T
        return out


def point_name(labels: list[str], at: float) -> str | None:
    return None if np.isnan(at) else labels[int(at)]


def concept_onset_frame(
    pair: Pair, curve: str, onsets: np.ndarray, labels: list[str], concepts: drift.Concepts
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pair": pair.label,
            "curve": curve,
            "concept": np.arange(len(onsets)),
            "term": concepts.terms,
            "category": concepts.categories,
            "onset": onsets,
            "onset_label": [point_name(labels, o) for o in onsets],
        }
    )


def checkpoint_velocities(
    members: list[str], compared: dict[tuple[str, str], dict[str, np.ndarray]], states: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per prompt: the JS between every two checkpoints (n, k, k), and the behavioural and representational
    velocities between consecutive ones (n, k - 1 each)."""
    k, n = len(members), states[members[0]].shape[1]
    js = np.zeros((n, k, k))
    for (i, a), (j, b) in combinations(enumerate(members), 2):
        js[:, i, j] = js[:, j, i] = compared[(a, b)]["js"]
    behaviour = js[:, np.arange(k - 1), np.arange(1, k)]
    representation = np.stack([drift_by_layer(states[a], states[b]).mean(0) for a, b in pairwise(members)], axis=1)
    return js, behaviour, representation


def series_velocity(
    name: str,
    members: list[str],
    compared: dict[tuple[str, str], dict[str, np.ndarray]],
    states: dict[str, np.ndarray],
    floor: float,
    n_perm: int,
    n_boot: int,
    seed: int,
) -> tuple[list[dict], dict]:
    """One series' ``behaviour_velocity`` rows (per interval) and its ``velocity_lag`` row.

    Behavioural velocity: JS between consecutive checkpoints' next-token distributions (nats, mean over prompts);
    representational velocity: their cosine drift (mean over residual points), both per prompt, so the lag of one
    behind the other is tested prompt by prompt (``analyses.trajectory.lead_lag``)."""
    k, consecutive = len(members), list(pairwise(members))
    js, behaviour, representation = checkpoint_velocities(members, compared, states)
    test = concentration_test(js.mean(0), n_perm, seed)
    low, high = bootstrap_mean_ci(behaviour, n_boot=n_boot, seed=seed)
    steps = [series_step(v) for v in members]
    rows = [
        {
            "series": name,
            "interval": t,
            "step_from": steps[t],
            "step_to": steps[t + 1],
            "js": float(behaviour[:, t].mean()),
            "js_ci_low": float(low[t]),
            "js_ci_high": float(high[t]),
            "top1_agree": float(compared[consecutive[t]]["top1_agree"].mean()),
            "q025": float(test.band[t, 0]),
            "q50": float(test.band[t, 1]),
            "q975": float(test.band[t, 2]),
            "floor": floor,
            "above_floor": bool(low[t] > floor),
            "drift": float(representation[:, t].mean()),
        }
        for t in range(k - 1)
    ]
    lag = lead_lag(representation, behaviour, n_perm, n_boot, seed)
    peak = {
        kind: int(np.argmax(v.mean(0))) for kind, v in (("behaviour", behaviour), ("representation", representation))
    }
    row = {
        "series": name,
        "n_checkpoints": k,
        "c": float(test.c),
        "p": float(test.p),
        "null_mean": float(test.null_mean),
        "expected": test.expected,
        "floor": floor,
        "intervals_above_floor": int(sum(r["above_floor"] for r in rows)),
        "lag": lag.lag,
        "lag_ci_low": lag.low,
        "lag_ci_high": lag.high,
        "lag_p": lag.p,
        "lag_n": lag.n,
        **{f"peak_{kind}": f"{steps[t]}→{steps[t + 1]}" for kind, t in peak.items()},
    }
    return rows, row


def token_text(tokens: list[str], ids: np.ndarray) -> list[str]:
    """Token ids as text; ids past the tokenizer's vocabulary (padding rows of the unembedding) by number."""
    return [tokens[i] if i < len(tokens) else f"<id {i}>" for i in ids]


def own_tables(
    own: dict[str, lens_math.OwnLens], heads: Heads, stacks: Stacks, concepts: drift.Concepts
) -> dict[str, pd.DataFrame]:
    """``lens_own`` (entropy, KL from the final distribution, the top token) and ``lens_top`` (the top-k tokens)."""
    own_frames, top_frames = [], []
    for v, read in own.items():
        points, n, k = read.top_ids.shape
        labels = stacks.labels[v]
        where = {
            "variant": v,
            "layer": np.repeat(np.arange(points), n),
            "label": np.repeat(labels, n),
            "concept": np.tile(np.arange(n), points),
        }
        top1 = read.top_ids[:, :, 0].ravel()
        own_frames.append(
            pd.DataFrame(
                {
                    **where,
                    "term": np.tile(concepts.terms, points),
                    "category": np.tile(concepts.categories, points),
                    "entropy": read.entropy.ravel(),
                    "kl_to_final": read.kl_to_final.ravel(),
                    "top_token": token_text(heads.tokens[v], top1),
                    "top_prob": read.top_probs[:, :, 0].ravel(),
                }
            )
        )
        ids = read.top_ids.ravel()
        top_frames.append(
            pd.DataFrame(
                {
                    **{key: np.repeat(val, k) for key, val in where.items() if key != "variant"},
                    "variant": v,
                    "rank": np.tile(np.arange(1, k + 1), points * n),
                    "token_id": ids,
                    "token": token_text(heads.tokens[v], ids),
                    "prob": read.top_probs.ravel(),
                }
            )
        )
    return {"lens_own": pd.concat(own_frames, ignore_index=True), "lens_top": pd.concat(top_frames, ignore_index=True)}


def ci_columns(name: str, values: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    low, high = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
    return {name: float(values.mean()), f"{name}_ci_low": float(low), f"{name}_ci_high": float(high)}


def common_tables(
    common: dict[Pair, np.ndarray], labels: list[str], concepts: drift.Concepts, n_boot: int, seed: int
) -> dict[str, pd.DataFrame]:
    """``lens_common`` (JS per pair, point and prompt) and ``lens_layers`` (its mean per point, with a CI)."""
    frames, rows = [], []
    for p, js in common.items():
        points, n = js.shape
        frames.append(
            pd.DataFrame(
                {
                    "pair": p.label,
                    "floor": p.floor,
                    "layer": np.repeat(np.arange(points), n),
                    "label": np.repeat(labels, n),
                    "concept": np.tile(np.arange(n), points),
                    "term": np.tile(concepts.terms, points),
                    "category": np.tile(concepts.categories, points),
                    "js": js.ravel(),
                }
            )
        )
        low, high = bootstrap_mean_ci(js.T, n_boot=n_boot, seed=seed)
        for layer in range(points):
            rows.append(
                {
                    "pair": p.label,
                    "floor": p.floor,
                    "layer": layer,
                    "label": labels[layer],
                    "js": float(js[layer].mean()),
                    "js_ci_low": float(low[layer]),
                    "js_ci_high": float(high[layer]),
                }
            )
    columns = ["pair", "floor", "layer", "label", "concept", "term", "category", "js"]
    return {
        "lens_common": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns),
        "lens_layers": pd.DataFrame(rows, columns=["pair", "floor", "layer", "label", "js", "js_ci_low", "js_ci_high"]),
    }


OUTPUT_MEASURES = ("js", "kl", "top1_agree", "rank_of_top")


def output_tables(
    behaviour: dict[Pair, dict[str, np.ndarray]],
    analysis: Any,
    concepts: drift.Concepts,
    n_boot: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """``output_drift`` per pair and prompt, ``output_pairs`` per pair and ``output_categories`` per pair and
    category: the next-token comparisons with bootstrap CIs, beside the cosine drift at the headline point and its
    rank correlation with the JS over prompts."""
    from scipy.stats import spearmanr

    drift_rows = analysis["drift"]
    head_layer = int(analysis["pairs"]["layer"].iloc[0]) if len(analysis["pairs"]) else None
    frames, pair_rows, cat_rows = [], [], []
    cats = np.asarray(concepts.categories)
    for p, out in behaviour.items():
        cosine = drift_rows[(drift_rows["pair"] == p.label) & (drift_rows["layer"] == head_layer)]
        cos = cosine.sort_values("concept")["drift"].to_numpy() if len(cosine) else np.full(len(cats), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "pair": p.label,
                    "floor": p.floor,
                    "concept": np.arange(len(cats)),
                    "term": concepts.terms,
                    "category": concepts.categories,
                    **{m: out[m] for m in OUTPUT_MEASURES},
                    "cosine_drift": cos,
                }
            )
        )
        row: dict[str, Any] = {"pair": p.label, "a": p.a, "b": p.b, "floor": p.floor, "n": len(cats)}
        for m in ("js", "kl", "top1_agree"):
            row |= ci_columns(m, out[m], n_boot, seed)
        row["rank_of_top_median"] = float(np.median(out["rank_of_top"]))
        row["cosine_drift"] = float(np.nanmean(cos)) if not np.isnan(cos).all() else np.nan
        varies = np.ptp(out["js"]) > 0 and np.nanstd(cos) > 0
        row["spearman_drift_js"] = float(spearmanr(cos, out["js"]).statistic) if varies else np.nan
        pair_rows.append(row)
        for cat in dict.fromkeys(concepts.categories):
            sel = cats == cat
            cat_row = {"pair": p.label, "floor": p.floor, "category": cat, "n": int(sel.sum())}
            for m in ("js", "top1_agree"):
                cat_row |= ci_columns(m, out[m][sel], n_boot, seed)
            cat_rows.append(cat_row)
    return {
        "output_drift": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        "output_pairs": pd.DataFrame(pair_rows),
        "output_categories": pd.DataFrame(cat_rows),
    }


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    """Next-token drift by pair next to the cosine drift, and the localisation table."""
    t = results.tables
    out = {}
    if len(t["output_pairs"]):
        cols = ["pair", "js", "js_ci_low", "js_ci_high", "kl", "top1_agree", "top1_agree_ci_low"]
        cols += ["top1_agree_ci_high", "rank_of_top_median", "cosine_drift", "spearman_drift_js"]
        title = (
            "Output drift: the pairs' next-token distributions (JS and KL in nats, top-1 agreement, median rank of "
            "a's top token in b; 95% bootstrap CI over prompts) beside the cosine drift at the headline point"
        )
        out[title] = t["output_pairs"][cols]
    if len(t["localisation"]):
        loc_table = t["localisation"]
        shown = loc_table.assign(
            onset=[span(r, "onset") for _, r in loc_table.iterrows()],
            break_=[span(r, "break") for _, r in loc_table.iterrows()],
            half=[span(r, "half") for _, r in loc_table.iterrows()],
        )[["pair", "measure", "against", "onset", "break_", "half", "final"]].rename(columns={"break_": "break"})
        title = (
            "Localisation: where each depth curve first exceeds the noise floor's 95th percentile (onset), its largest "
            "step (break) and where it reaches half its final value (95% bootstrap CI over prompts)"
        )
        out[title] = shown
    if len(t["velocity_lag"]):
        cols = ["series", "n_checkpoints", "c", "expected", "p", "intervals_above_floor", "lag", "lag_ci_low"]
        cols += ["lag_ci_high", "lag_p", "peak_representation", "peak_behaviour"]
        title = (
            "Next-token velocity along checkpoint series: C = share of the JS between consecutive checkpoints in the "
            "first third of intervals (p vs random orderings); lag = when behaviour changes minus when representation "
            "does, in intervals (centre of mass per prompt, sign-flip p)"
        )
        out[title] = t["velocity_lag"][cols]
    return out


def span(row: pd.Series, name: str) -> str:
    """A located point with its CI as text: ``block 11 [block 10, block 12]``, or ``none``."""
    at, low, high = (row[f"{name}{end}_label"] for end in ("", "_low", "_high"))
    if not isinstance(at, str):
        return "none"
    return at if not isinstance(low, str) or low == high == at else f"{at} [{low}, {high}]"


def findings(results: Any) -> list[str]:
    """Per pair (but the floor): whether its next-token distributions differ more than the floor's, and where its
    cosine drift and common-lens JS start."""
    t = results.tables
    pairs = t["output_pairs"]
    out = list(results.meta_of(RESULT_SET).get("notes", []))  # e.g. a variant with another tokenizer
    if not len(pairs):
        return out
    floor = pairs[pairs["floor"]].iloc[0] if pairs["floor"].any() else None
    for _, row in pairs[~pairs["floor"]].iterrows():
        text = (
            f"{row['pair']}: next-token JS {row['js']:.3g} [{row['js_ci_low']:.3g}, {row['js_ci_high']:.3g}] nats, "
            f"top-1 agreement {row['top1_agree']:.1%}"
        )
        if floor is not None:
            above = "above" if row["js_ci_low"] > floor["js_ci_high"] else "not clearly above"
            text += f"; the noise floor {floor['pair']} gives JS {floor['js']:.3g}: {above} the floor"
        if not np.isnan(row["spearman_drift_js"]):
            text += f"; across prompts cosine drift and JS correlate at Spearman {row['spearman_drift_js']:.2f}"
        out.append(text + ".")
        located = t["localisation"][t["localisation"]["pair"] == row["pair"]]
        starts = [
            f"{r['measure']} from {point_phrase(r['onset_label'])}"
            for _, r in located.iterrows()
            if isinstance(r["onset_label"], str)
        ]
        if starts:
            out.append(f"{row['pair']} exceeds the noise floor: " + "; ".join(starts) + ".")
    return out + [velocity_finding(row) for _, row in t["velocity_lag"].iterrows()]


def velocity_finding(row: pd.Series) -> str:
    """One series' next-token velocity: early concentration, intervals above the floor, and its lag behind the
    representational velocity."""
    text = concentration_phrase(row, "next-token (JS)")
    if np.isfinite(row["floor"]):
        text += (
            f", {row['intervals_above_floor']} of {row['n_checkpoints'] - 1} intervals above the noise floor's JS "
            f"({row['floor']:.3g})"
        )
    ci = f"[{row['lag_ci_low']:.2f}, {row['lag_ci_high']:.2f}]"
    clear = row["lag_p"] < SIGNIFICANCE and (row["lag_ci_low"] > 0 or row["lag_ci_high"] < 0)
    if not np.isfinite(row["lag"]):
        order = "no prompt moved in both velocities, so neither can be said to lead"
    elif not clear:
        order = (
            f"neither velocity clearly leads (behaviour's lag {row['lag']:+.2f} intervals {ci}, p = {row['lag_p']:.2g})"
        )
    else:
        first, second = ("representation", "behaviour") if row["lag"] > 0 else ("behaviour", "representation")
        order = (
            f"{first} changes before {second} by {abs(row['lag']):.2f} checkpoint intervals (behaviour's lag "
            f"{row['lag']:+.2f} {ci}, p = {row['lag_p']:.2g} over {row['lag_n']} prompts)"
        )
    return f"{text}; {order}; peaks: representation {row['peak_representation']}, behaviour {row['peak_behaviour']}."


EXPERIMENT = Experiment(
    name=RESULT_SET,
    version="1",
    settings=lambda config: config.lens,
    runner=LensRun,
    tables=TABLES,
    summaries=summaries,
    findings=findings,
)
