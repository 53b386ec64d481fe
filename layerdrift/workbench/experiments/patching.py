"""Activation patching between variants, reusing the run store for every activation it patches in.

Flow for a receiver R and each compared variant S (one model in memory at a time)::

    greedy answers of every variant        RUN/patching/answers/VARIANT.json
    per pair: the prompts where answers differ (flips), extended by the answers' common prefix,
      with the two branch tokens and the target token            RUN/patching/PAIR/plan.json
    per pair and variant: block / attention / MLP outputs at every token
      (a capture job in the store: RUN/captures/VARIANT/patch-PAIR/all/HOOK) + clean readouts
    patch sweeps: S's cached activations into R (and R's into S), per component, layer and
      position                                                   RUN/patching/PAIR/sweep-*.npz
    tables: RUN/results/patching.parquet, RUN/results/patching_prompts.parquet

Every step is cached under a fingerprint, so a second run (or a resumed one) redoes nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from layerdrift.analyses.localisation import locate
from layerdrift.analyses.patching import (
    effect_interval,
    first_divergence,
    logit_difference,
    near_ties,
    normalised_effect,
    normalised_effect_resamples,
    target_logprob,
)
from layerdrift.concepts.patch_prompts import load_patch_prompts
from layerdrift.core.files import read_cached_json, read_cached_npz, write_json_atomic, write_npz_atomic
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import pair_label
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.interventions import (
    ALL_POSITIONS,
    clean_readout,
    component_hook,
    greedy_continuations,
    patch_sweep,
)
from layerdrift.hooks.prompts import encode_prompt, pad_id
from layerdrift.workbench.config import ExperimentConfig, PatchingSpec
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output
from layerdrift.workbench.models.loading import LoadedVariant

PATCHING = "patching"
METRICS = ("logprob", "logit_diff")
READ = {"a": 0, "b": 1, "target": 2}  # columns of the read-out token ids: A's branch token, B's, the target's


def token_text(tokenizer: Any, token_id: int) -> str:
    """A token as text (its raw form when it is a fragment of a UTF-8 character)."""
    text = tokenizer.decode([token_id])
    return text if text and "\ufffd" not in text else tokenizer.convert_ids_to_tokens([token_id])[0]


def normalise_answer(text: str) -> str:
    """An answer as compared for flips: its first line, trimmed, without trailing punctuation."""
    return text.strip().split("\n")[0].strip().rstrip(".,;:!?").strip()


@dataclass
class PairPlan:
    """The patching prompts of one pair: token ids, branch tokens (A's, B's, target's), provenance."""

    a: str
    b: str
    seqs: list[list[int]]
    read_ids: np.ndarray  # (n, 3)
    target_ok: np.ndarray  # (n,) whether the target token is defined at the branch point
    rows: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return f"{self.a}--{self.b}"


def pair_metric(name: str, plan: PairPlan, logits: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """``logprob``: log p(target) where the target is defined at the branch point; ``logit_diff``: logit(B's token) -
    logit(A's)."""
    if name == "logprob":
        return np.where(plan.target_ok, target_logprob(logits, lse, READ["target"]), np.nan)
    return logit_difference(logits, READ["b"], READ["a"])


def patching_variants(config: ExperimentConfig) -> tuple[str, list[str]]:
    """(receiver, compared variants); an error if there is nothing to compare."""
    assert config.patching is not None
    receiver = config.patching.receiver or config.reference
    others = [v for v in (config.patching.compare or config.non_floor_variants()) if v != receiver]
    if not others:
        raise LayerdriftError(
            f"patching has no variant to compare with '{receiver}'; add another variant or set patching.compare."
        )
    return receiver, others


def prompt_table(
    plan: PairPlan, clean_a: dict[str, Any] | None, clean_b: dict[str, Any] | None, min_gap: float
) -> pd.DataFrame:
    """One row per patched prompt of a pair: each side's clean logit difference and target log-probability, the gap
    between the sides that the normalised effects divide by, and whether the prompt is a near-tie (left out)."""
    frame = pd.DataFrame(plan.rows)
    frame.insert(0, "pair", pair_label(plan.a, plan.b))
    for side, clean in (("a", clean_a), ("b", clean_b)):
        if clean is None:
            continue
        logits, lse = np.asarray(clean["logits"]), np.asarray(clean["lse"])
        frame[f"logit_diff_{side}"] = pair_metric("logit_diff", plan, logits, lse)
        frame[f"logprob_target_{side}"] = pair_metric("logprob", plan, logits, lse)
    if clean_a is not None and clean_b is not None:
        for name, column in (("logit_diff", "logit_diff"), ("logprob", "logprob_target")):
            a, b = frame[f"{column}_a"].to_numpy(), frame[f"{column}_b"].to_numpy()
            frame[f"gap_{name}"] = b - a
            frame[f"near_tie_{name}"] = near_ties(a, b, min_gap)
    return frame


class PatchingRun:
    """One patching experiment of a config on a run store."""

    def __init__(self, ctx: RunContext):
        config, store = ctx.config, ctx.store
        self.ctx = ctx
        assert config.patching is not None
        self.config, self.store = config, store
        self.spec: PatchingSpec = config.patching
        _, self.prompts = load_patch_prompts(self.spec.prompts)
        self.receiver, self.others = patching_variants(config)
        self.root = store.root / PATCHING
        self.identity = {v: ctx.identity(v) for v in [self.receiver, *self.others]}
        self.key = fingerprint(
            {
                "spec": self.spec.model_dump(mode="json"),
                "prompts": [p.__dict__ for p in self.prompts],
                "variants": self.identity,
                "seed": config.seed,
            }
        )

    # ---- step 1: greedy answers ---------------------------------------------------------
    def answers(self, name: str) -> dict[str, Any]:
        """Prompt ids and greedy answer ids of one variant (cached)."""
        spec = self.config.variant(name)
        path = self.root / "answers" / f"{name}.json"
        key = fingerprint(
            {
                "variant": self.identity[name],
                "prompts": [p.prompt for p in self.prompts],
                "targets": [p.target for p in self.prompts],
                "max_new_tokens": self.spec.max_new_tokens,
            }
        )
        cached = read_cached_json(path, key)
        if cached is not None:
            return cached
        with self.ctx.model(name) as model:
            loaded = model()
            tok = loaded.tokenizer
            prompt_ids = [encode_prompt(tok, p.prompt, spec.chat_template, spec.prepend_bos).ids for p in self.prompts]
            target_ids = [
                encode_prompt(tok, p.prompt, spec.chat_template, spec.prepend_bos, response=p.target).ids
                for p in self.prompts
            ]
            stops = [t for t in (tok.eos_token_id,) if t is not None]
            new = greedy_continuations(
                loaded.bridge, prompt_ids, pad_id(tok), self.spec.max_new_tokens, stops, self.spec.batch_size
            )
            data = {
                "fingerprint": key,
                "tokenizer_sha256": loaded.info["tokenizer_sha256"],
                "prompt_ids": prompt_ids,
                "target_ids": target_ids,
                "answer_ids": new,
                "answers": [tok.decode(a, skip_special_tokens=True) for a in new],
                "tokens": {str(t): token_text(tok, t) for a in new for t in a},
            }
        write_json_atomic(path, data)
        return data

    # ---- step 2: the plan of one pair ---------------------------------------------------
    def plan(self, a: str, b: str, ans: dict[str, dict[str, Any]]) -> PairPlan:
        """Select the prompts (flips or all), extend them to the branch point, and pick the read-out tokens."""
        A, B = ans[a], ans[b]
        if A["tokenizer_sha256"] != B["tokenizer_sha256"]:
            raise LayerdriftError(
                f"patching needs variants with one tokenizer, but '{a}' and '{b}' have different "
                "vocabularies; patch only between variants of the same model family."
            )
        seqs, reads, ok, rows = [], [], [], []
        for i, p in enumerate(self.prompts):
            if A["prompt_ids"][i] != B["prompt_ids"][i]:
                raise LayerdriftError(
                    f"patching prompt {i} ({p.prompt!r}) tokenizes differently for '{a}' and '{b}' "
                    "(check chat_template and prepend_bos); both variants must see the same tokens."
                )
            text_a, text_b = normalise_answer(A["answers"][i]), normalise_answer(B["answers"][i])
            flip = text_a != text_b
            if self.spec.select == "flips" and not flip:
                continue
            j = first_divergence(A["answer_ids"][i], B["answer_ids"][i]) if flip else 0
            if j is None:
                continue  # the answers differ only after the decoded length; nothing to contrast
            seq = A["prompt_ids"][i] + A["answer_ids"][i][:j]
            full = A["target_ids"][i]
            target_ok = len(full) > len(seq) and full[: len(seq)] == seq
            read = [A["answer_ids"][i][j], B["answer_ids"][i][j], full[len(seq)] if target_ok else 0]
            seqs.append(seq)
            reads.append(read)
            ok.append(target_ok)
            rows.append(
                {
                    "prompt_index": i,
                    "prompt": p.prompt,
                    "category": p.category,
                    "target": p.target,
                    "answer_a": A["answers"][i],
                    "answer_b": B["answers"][i],
                    "flip": flip,
                    "branch": j,
                    "token_a": A["tokens"].get(str(read[0]), str(read[0])),
                    "token_b": B["tokens"].get(str(read[1]), str(read[1])),
                    "id_a": read[0],
                    "id_b": read[1],
                    "n_tokens": len(seq),
                }
            )
            if len(seqs) >= self.spec.max_prompts:
                break
        return PairPlan(a, b, seqs, np.asarray(reads, dtype=np.int64).reshape(-1, 3), np.asarray(ok, dtype=bool), rows)

    # ---- step 3: captures and clean readouts ---------------------------------------------
    def hooks(self, name: str) -> list[str]:
        """Patched hook points of a variant, component-major: resid of every layer, then attn, then mlp."""
        n_layers = self.store.n_layers(name)
        return [component_hook(c, l) for c in self.spec.components for l in self.layers(n_layers)]

    def layers(self, n_layers: int) -> list[int]:
        return (
            list(range(n_layers)) if self.spec.layers == "all" else [l for l in self.spec.layers if 0 <= l < n_layers]
        )

    def capture(self, plan: PairPlan, name: str, model: Callable[[], LoadedVariant], progress: Any) -> dict[str, Any]:
        """One variant's component outputs on a pair's prompts (a store capture job) and its clean readout."""
        prompt_set = f"patch-{plan.key}"
        hooks = self.hooks(name)
        key = fingerprint({"variant": self.identity[name], "seqs": plan.seqs, "hooks": hooks})
        self.ctx.capture_sequences(
            name,
            prompt_set,
            key,
            n=len(plan.seqs),
            batch_size=self.spec.batch_size,
            model=model,
            sequences=lambda _: plan.seqs,
            hooks=hooks,
            position="all",
            max_len=max(len(s) for s in plan.seqs),
            kind="patching",
        )
        path = self.root / plan.key / f"clean-{name}.json"
        clean_key = fingerprint({"variant": self.identity[name], "seqs": plan.seqs, "read": plan.read_ids.tolist()})
        cached = read_cached_json(path, clean_key)
        if cached is None:
            loaded = model()
            logits, lse = clean_readout(
                loaded.bridge, plan.seqs, pad_id(loaded.tokenizer), plan.read_ids, self.spec.batch_size
            )
            cached = {"fingerprint": clean_key, "logits": logits.tolist(), "lse": lse.tolist()}
            write_json_atomic(path, cached)
        return cached

    # ---- step 4: sweeps -----------------------------------------------------------------
    def offsets(self) -> list[int]:
        return [-k for k in range(1, self.spec.positions + 1)] + [ALL_POSITIONS]

    def sweep(
        self, plan: PairPlan, receiver: str, source: str, model: Callable[[], LoadedVariant], progress: Any
    ) -> dict[str, np.ndarray]:
        """Patch the source's cached activations into the receiver at every hook and offset (cached .npz)."""
        hooks = self.hooks(receiver)
        if hooks != self.hooks(source):
            raise LayerdriftError(
                f"patching needs one architecture, but '{source}' and '{receiver}' have different "
                "numbers of layers; patch only between variants of the same model."
            )
        key = fingerprint(
            {
                "plan": plan.seqs,
                "read": plan.read_ids.tolist(),
                "receiver": self.identity[receiver],
                "source": self.identity[source],
                "hooks": hooks,
                "offsets": self.offsets(),
            }
        )[:20]
        path = self.root / plan.key / f"sweep-{source}-into-{receiver}-{key}.npz"
        cached = read_cached_npz(path)
        if cached is not None:
            return cached
        loaded = model()
        prompt_set = f"patch-{plan.key}"
        sources = {h: self.store.activations(source, prompt_set, h, "all") for h in hooks}
        task = progress.add_task(f"patch {source} → {receiver}", total=len(hooks)) if progress else None
        logits, lse, valid = patch_sweep(
            loaded.bridge,
            plan.seqs,
            pad_id(loaded.tokenizer),
            hooks,
            sources,
            self.offsets(),
            plan.read_ids,
            self.spec.batch_size,
            progress=(lambda: progress.update(task, advance=1)) if progress else None,
        )
        result = {"logits": logits, "lse": lse, "valid": valid}
        write_npz_atomic(path, result)
        return result

    # ---- the whole experiment -----------------------------------------------------------
    def run(self) -> Output:
        """Answers, plans, captures, sweeps. Each step is one piece of work per variant (independent of the others,
        so they run side by side on a cluster), and each variant is loaded at most three times (once per step) and
        only when something is not cached."""
        say = self.ctx.say
        variants = [self.receiver, *self.others]
        say("patching: greedy answers")
        answers = dict(zip(variants, self.ctx.pieces(self, "answers", [(v,) for v in variants], loads_model=True)))
        plans = {o: self.plan(self.receiver, o, answers) for o in self.others}
        for o, plan in plans.items():
            say(f"patching: {len(plan.seqs)} prompts for {self.receiver} vs {o} (select = {self.spec.select})")
        plans = {o: p for o, p in plans.items() if p.seqs}
        # every (other, source, receiver), each pair's "other into receiver" first (the tables' order)
        directions = [
            (o, s, d)
            for o in plans
            for s, d in (
                [(o, self.receiver), (self.receiver, o)] if self.spec.both_directions else [(o, self.receiver)]
            )
        ]
        say("patching: captures")
        visits = {v: [o for o in plans if v in (self.receiver, o)] for v in variants}
        visits = {v: os for v, os in visits.items() if os}
        captured = self.ctx.pieces(
            self, "capture_piece", [(v, [plans[o] for o in os]) for v, os in visits.items()], True
        )
        clean = {(o, v): c for (v, os), cs in zip(visits.items(), captured) for o, c in zip(os, cs)}
        say("patching: sweeps")
        into = {d: [(o, s) for o, s, dd in directions if dd == d] for d in dict.fromkeys(d for _, _, d in directions)}
        swept = self.ctx.pieces(
            self, "sweep_piece", [(d, [(plans[o], s) for o, s in jobs]) for d, jobs in into.items()], loads_model=True
        )
        by_direction = {(o, s, d): r for (d, jobs), rs in zip(into.items(), swept) for (o, s), r in zip(jobs, rs)}
        return Output(self.tables(plans, clean, {k: by_direction[k] for k in directions}))

    def capture_piece(self, name: str, plans: list[PairPlan]) -> list[dict[str, Any]]:
        """One variant's captures and clean readouts on each of its pairs' prompts, its model loaded once."""
        with self.ctx.model(name) as model:
            return [self.capture(plan, name, model, self.ctx.progress) for plan in plans]

    def sweep_piece(self, receiver: str, jobs: list[tuple[PairPlan, str]]) -> list[dict[str, np.ndarray]]:
        """Every sweep into one receiver (a pair's plan and the source patched in), its model loaded once."""
        with self.ctx.model(receiver) as model:
            return [self.sweep(plan, receiver, source, model, self.ctx.progress) for plan, source in jobs]

    def tables(
        self,
        plans: dict[str, PairPlan],
        clean: dict[tuple[str, str], dict[str, Any]],
        sweeps: dict[tuple[str, str, str], dict[str, np.ndarray]],
    ) -> dict[str, pd.DataFrame]:
        """The long effect table (pair, direction, component, block, position) and the per-prompt table."""
        rows, located = [], []
        offsets = self.offsets()
        labels = [str(o) if o != ALL_POSITIONS else "all" for o in offsets]
        for (o, src, dst), res in sweeps.items():
            plan = plans[o]
            effects = {name: self.effects(name, plan, clean[(o, dst)], clean[(o, src)], res) for name in METRICS}
            resampled = {name: columns.pop(f"resampled_{name}") for name, columns in effects.items()}
            layers = self.layers(self.store.n_layers(dst))
            where = {
                "pair": pair_label(plan.a, plan.b),
                "source": src,
                "receiver": dst,
                "direction": f"{src} into {dst}",
            }
            for h, (component, layer) in enumerate((c, l) for c in self.spec.components for l in layers):
                for k, label in enumerate(labels):
                    row = {
                        **where,
                        "component": component,
                        "block": layer,
                        "position": label,
                        "offset": offsets[k],
                        "n_prompts": int(res["valid"][k].sum()),
                    }
                    for columns in effects.values():
                        row |= {c: v if np.ndim(v) == 0 else v[h, k] for c, v in columns.items()}
                    rows.append(row)
            every = labels.index("all")
            plain, boot = effects["logit_diff"]["normalised_logit_diff"][:, every], resampled["logit_diff"][:, every]
            for c, component in enumerate(self.spec.components):
                hooks = slice(c * len(layers), (c + 1) * len(layers))
                curves = np.vstack([plain[hooks], boot[hooks].T])  # (1 + boot, blocks): the estimate, then resamples
                located.append({**where, "component": component, **locate_effect(curves, layers)})
        prompt_frames = [
            prompt_table(plan, clean.get((o, plan.a)), clean.get((o, plan.b)), self.spec.min_gap)
            for o, plan in plans.items()
        ]
        return {
            "patching": pd.DataFrame(rows),
            "patching_localisation": pd.DataFrame(located),
            "patching_prompts": pd.concat(prompt_frames, ignore_index=True) if prompt_frames else pd.DataFrame(),
        }

    def effects(
        self, name: str, plan: PairPlan, dst: dict[str, Any], src: dict[str, Any], res: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """One metric's columns for every (hook, offset): the mean change, and the normalised effect with its CI over
        the prompts that are not near-ties (counted)."""
        c_dst = pair_metric(name, plan, np.asarray(dst["logits"]), np.asarray(dst["lse"]))
        c_src = pair_metric(name, plan, np.asarray(src["logits"]), np.asarray(src["lse"]))
        patched = pair_metric(name, plan, res["logits"], res["lse"])  # (hooks, offsets, n)
        ties = near_ties(c_dst, c_src, self.spec.min_gap)
        kept_dst, kept_src = np.where(ties, np.nan, c_dst), np.where(ties, np.nan, c_src)
        resampled = normalised_effect_resamples(patched, kept_dst, kept_src, self.spec.n_boot, self.config.seed)
        low, high = effect_interval(resampled)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell without one finite prompt is NaN
            delta = np.nanmean(patched - c_dst, axis=-1)
        return {
            f"delta_{name}": delta,
            f"normalised_{name}": normalised_effect(patched, kept_dst, kept_src),
            f"normalised_{name}_ci_low": low,
            f"normalised_{name}_ci_high": high,
            f"near_ties_{name}": int(ties.sum()),
            f"resampled_{name}": resampled,
        }


def locate_effect(curves: np.ndarray, blocks: list[int]) -> dict[str, Any]:
    """Onset (the first block whose normalised effect at every position exceeds zero), break and half-way block of a
    patching effect along depth, with bootstrap CIs over prompts (``analyses.localisation.locate``), as block
    numbers."""
    row = locate(curves, np.zeros_like(curves))
    for key in [k for k in row if k.split("_")[0] in ("onset", "break", "half") and k != "onset_defined"]:
        row[key] = np.nan if np.isnan(row[key]) else float(blocks[int(row[key])])
    return row


def check_patching(config: ExperimentConfig) -> None:
    """The patch prompts load and there is a pair to patch."""
    assert config.patching is not None
    load_patch_prompts(config.patching.prompts)
    patching_variants(config)


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    """Per direction and component: the first block whose normalised effect reaches 0.5, and the largest elsewhere."""
    patching = results.tables.get("patching")
    if patching is None or not len(patching):
        return {}
    rows = []
    for (direction, component), g in patching.groupby(["direction", "component"], sort=False):
        every = g[g["position"] == "all"].sort_values("block")
        last = g[g["position"] == "-1"].sort_values("block")
        others = g[~g["position"].isin(["all", "-1"])]["normalised_logit_diff"].dropna()
        half_all = every[every["normalised_logit_diff"] >= 0.5]["block"]
        half_last = last[last["normalised_logit_diff"] >= 0.5]["block"]
        rows.append(
            {
                "direction": direction,
                "component": component,
                "prompts": int(g["n_prompts"].max()),
                "first block ≥ 0.5 (all tokens)": int(half_all.iloc[0]) if len(half_all) else None,
                "first block ≥ 0.5 (last token)": int(half_last.iloc[0]) if len(half_last) else None,
                "max effect, earlier tokens": float(others.max()) if len(others) else None,
                "near-ties left out": int(g["near_ties_logit_diff"].max()),
            }
        )
    title = (
        "Activation patching: normalised effect on logit(B) − logit(A) (0 = receiver unchanged, 1 = source's "
        "behaviour; prompts whose two variants' values differ by less than patching.min_gap are near-ties, left out)"
    )
    return {title: pd.DataFrame(rows)}


def direction_finding(direction: str, component: str, g: pd.DataFrame) -> str:
    """Where patching one component at every token first recovers at least half the behaviour, CI included."""
    every = g[g["position"] == "all"].sort_values("block").dropna(subset=["normalised_logit_diff"])
    text = f"Patching {direction} ({component}, all tokens)"
    ties = f"{int(g['near_ties_logit_diff'].max())} near-ties left out"
    if every.empty:
        return f"{text}: no prompt is left to normalise by ({ties})."
    reliable = every[every["normalised_logit_diff_ci_low"] >= 0.5]
    row = reliable.iloc[0] if len(reliable) else every.loc[every["normalised_logit_diff"].idxmax()]
    effect = (
        f"{row['normalised_logit_diff']:.2f} [{row['normalised_logit_diff_ci_low']:.2f}, "
        f"{row['normalised_logit_diff_ci_high']:.2f}] at block {int(row['block'])}"
    )
    if len(reliable):
        return f"{text} first recovers at least half the behaviour with its whole 95% CI: {effect} ({ties})."
    return f"{text} recovers half the behaviour at no block with its whole 95% CI; the largest is {effect} ({ties})."


def findings(results: Any) -> list[str]:
    """Per direction and component: the first block whose normalised effect is reliably at least 0.5."""
    patching = results.tables.get("patching")
    if patching is None or not len(patching) or "normalised_logit_diff_ci_low" not in patching:
        return []
    return [direction_finding(d, c, g) for (d, c), g in patching.groupby(["direction", "component"], sort=False)]


EXPERIMENT = Experiment(
    name="patching",
    version="3",
    settings=lambda config: config.patching,
    runner=PatchingRun,
    tables=("patching", "patching_localisation", "patching_prompts"),
    check=check_patching,
    summaries=summaries,
    findings=findings,
)
