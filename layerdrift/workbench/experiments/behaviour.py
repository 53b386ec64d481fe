"""Behaviour vectors (contrastive activation addition) of every variant, compared across variants, with a steering
check.

Flow, per behaviour set and variant (one model in memory at a time)::

    prompts: template(question) + answer_prefix + letter, once with the matching letter and once
      with the other; captured at the last token (the answer letter) at every residual point
      (a capture job in the store: RUN/captures/VARIANT/behaviour-SET/last/HOOK)
    vector per layer = mean over the training items of (matching - non-matching)
      -> RUN/behaviour/vectors.npz (keys VARIANT/SET, the layout of the published reference file)
    steering check on held-out items: + / - c * vector added at a block output, P(matching letter)
    tables: behaviour_vectors, behaviour_cosine, behaviour_cross, behaviour_pca, behaviour_steering
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from layerdrift.analyses.uncertainty import bootstrap_mean_ci
from layerdrift.analyses.vectors import (
    contrast_vectors,
    cross_layer_cosine,
    layerwise_cosine,
    split_half_cosines,
    vector_pca,
)
from layerdrift.concepts.behaviours import BehaviourSet, load_behaviour_set, render_question
from layerdrift.core.files import read_cached_json, write_json_atomic
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import point_label, residual_hook_names
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.interventions import component_hook, steered_readout
from layerdrift.hooks.prompts import encode_prompt, pad_id
from layerdrift.workbench.config import BehaviourSpec
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output
from layerdrift.workbench.models.loading import LoadedVariant

BEHAVIOUR = "behaviour"
STEERING_COLUMNS = ["behaviour", "variant", "block", "scale", "p_matching", "p_ci_low", "p_ci_high", "shift"]
STEERING_COLUMNS += ["shift_ci_low", "shift_ci_high", "n_items"]


def auto_steering_layers(n_layers: int, count: int = 4) -> list[int]:
    """``count`` evenly spaced block indices from a quarter to three quarters of the depth (where steering usually
    works)."""
    return sorted({int(np.rint(x)) for x in np.linspace(n_layers / 4, 3 * n_layers / 4, count)})


def p_matching(logits: np.ndarray) -> np.ndarray:
    """P(matching letter) among the two letters, from their logits (..., 2) with the matching one first."""
    return 1.0 / (1.0 + np.exp(logits[..., 1] - logits[..., 0]))


def balanced_split(letters: list[str], n_held_out: int) -> tuple[list[int], list[int]]:
    """Hold out ``n_held_out`` items from the end, taking the matching letters in turn, so both parts keep the set's
    letter
    balance.

    With the letters balanced in the training part, the letter's own direction cancels out of
    the vector (at the embedding it is exactly zero) and what remains is the behaviour.
    """
    by_letter: dict[str, list[int]] = {}
    for i, letter in enumerate(letters):
        by_letter.setdefault(letter, []).append(i)
    queues = [list(reversed(ix)) for _, ix in sorted(by_letter.items())]
    held: list[int] = []
    while len(held) < n_held_out and any(queues):
        for q in queues:
            if q and len(held) < n_held_out:
                held.append(q.pop(0))
    held_set = set(held)
    return [i for i in range(len(letters)) if i not in held_set], sorted(held)


def behaviour_sets(spec: BehaviourSpec) -> list[BehaviourSet]:
    """Load and check the configured sets (run before anything is extracted, so a bad set writes nothing)."""
    sets = [load_behaviour_set(s) for s in spec.sets]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise LayerdriftError(f"behaviour.sets lists a set twice ({names}); give each file a distinct name.")
    for s in sets:
        n = min(len(s.items), spec.max_items)
        if n - spec.steering_items < 2:
            raise LayerdriftError(
                f"behaviour set '{s.name}' has {n} items, too few to hold out "
                f"{spec.steering_items} for steering and keep 2 for the vector; lower "
                "behaviour.steering_items."
            )
    return sets


class BehaviourRun:
    """One behaviour-vector experiment of a config on a run store."""

    def __init__(self, ctx: RunContext):
        config, store = ctx.config, ctx.store
        self.ctx = ctx
        assert config.behaviour is not None
        self.config, self.store = config, store
        self.spec: BehaviourSpec = config.behaviour
        self.sets = behaviour_sets(self.spec)
        self.variants = self.spec.variants or config.non_floor_variants()
        self.identity = {v: ctx.identity(v) for v in self.variants}
        self.key = fingerprint(
            {
                "spec": self.spec.model_dump(mode="json"),
                "sets": [[i.__dict__ for i in s.items] for s in self.sets],
                "variants": self.identity,
            }
        )

    def split(self, s: BehaviourSet) -> tuple[list[int], list[int]]:
        """(training item indices for the vector, held-out indices for steering), see ``balanced_split``."""
        return balanced_split([i.matching for i in s.items[: self.spec.max_items]], self.spec.steering_items)

    def encode(self, loaded: LoadedVariant, s: BehaviourSet) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of every item answered with the matching letter and with the other letter."""
        spec = self.config.variant(loaded.name)
        out: tuple[list[list[int]], list[list[int]]] = ([], [])
        for i, item in enumerate(s.items[: self.spec.max_items]):
            question = render_question(item, self.spec.template)
            for side, letter in ((0, item.matching), (1, item.not_matching)):
                enc = encode_prompt(
                    loaded.tokenizer,
                    question,
                    spec.chat_template,
                    spec.prepend_bos,
                    response=self.spec.answer_prefix + letter,
                )
                last = enc.offsets[-1]
                if letter not in enc.text[last[0] : last[1]]:
                    shown = loaded.tokenizer.convert_ids_to_tokens([enc.ids[-1]])[0]
                    raise LayerdriftError(
                        f"behaviour set '{s.name}', item {i + 1}: in variant '{loaded.name}' the last "
                        f"token is {shown!r}, not the answer letter {letter!r} "
                        "(the tokenizer adds a token after the text); the letter must be the last token, "
                        "so use a tokenizer or chat template that ends the prompt there."
                    )
                out[side].append(enc.ids)
        return out

    def capture(
        self, s: BehaviourSet, name: str, model: Callable[[], LoadedVariant], progress: Any
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(matching, non-matching) activations at the letter token, (points, n, d) each, and point labels."""
        prompt_set = f"behaviour-{s.name}"
        n_layers = self.store.n_layers(name)
        hooks = residual_hook_names(n_layers)
        key = fingerprint(
            {
                "variant": self.identity[name],
                "spec": self.spec.model_dump(mode="json", include={"template", "answer_prefix", "max_items"}),
                "items": [i.__dict__ for i in s.items[: self.spec.max_items]],
                "hooks": hooks,
            }
        )

        def sequences(loaded: LoadedVariant) -> list[list[int]]:
            matching, other = self.encode(loaded, s)
            return matching + other

        self.ctx.capture_sequences(
            name,
            prompt_set,
            key,
            n=2 * min(len(s.items), self.spec.max_items),
            batch_size=self.spec.batch_size,
            model=model,
            sequences=sequences,
            hooks=hooks,
            position="last",
            residual_points=hooks,
            kind="behaviour",
        )
        acts = np.stack([self.store.activations(name, prompt_set, h, "last") for h in hooks]).astype(np.float64)
        half = acts.shape[1] // 2
        return acts[:, :half], acts[:, half:], [point_label(h) for h in hooks]

    def steering_layers(self, n_layers: int) -> list[int]:
        if self.spec.steering_layers == "auto":
            return auto_steering_layers(n_layers)
        bad = [l for l in self.spec.steering_layers if not 0 <= l < n_layers]
        if bad:
            raise LayerdriftError(f"behaviour.steering_layers {bad} are outside the blocks 0..{n_layers - 1}.")
        return sorted(set(self.spec.steering_layers))

    def steer(
        self, s: BehaviourSet, name: str, vectors: np.ndarray, model: Callable[[], LoadedVariant]
    ) -> list[dict[str, Any]]:
        """P(matching letter) on held-out items with 0, +c and -c times the vector added at each steering block
        (cached)."""
        _, held_out = self.split(s)
        if not held_out:
            return []
        n_layers = self.store.n_layers(name)
        layers = self.steering_layers(n_layers)
        path = self.store.root / BEHAVIOUR / "steering" / f"{name}--{s.name}.json"
        key = fingerprint(
            {
                "variant": self.identity[name],
                "vectors": np.round(vectors, 6).tolist(),
                "layers": layers,
                "spec": self.spec.model_dump(mode="json"),
            }
        )
        cached = read_cached_json(path, key)
        if cached is not None:
            return cached["rows"]
        loaded = model()
        seqs, read_ids = self.answer_readout(loaded, s, held_out)
        c = self.spec.steering_scale
        base = self.steered_p(loaded, seqs, read_ids, layers[0], np.zeros((1, vectors.shape[1])))[0]
        rows = []
        for layer in layers:
            v = vectors[layer + 1]  # residual point layer+1 is block `layer`'s output
            p = self.steered_p(loaded, seqs, read_ids, layer, np.stack([c * v, -c * v]))
            for scale, items in ((0.0, base), (c, p[0]), (-c, p[1])):
                row = {"behaviour": s.name, "variant": name, "block": layer, "scale": scale}
                rows.append(row | steering_stats(items, base, self.spec.n_boot, self.config.seed))
        write_json_atomic(path, {"fingerprint": key, "rows": rows})
        return rows

    def answer_readout(
        self, loaded: LoadedVariant, s: BehaviourSet, held_out: list[int]
    ) -> tuple[list[list[int]], Int[np.ndarray, "n 2"]]:
        """The held-out items cut before their answer letter, and the (matching, other) letter ids read there."""
        matching, other = self.encode(loaded, s)
        seqs, reads = [], []
        for m, o in zip([matching[i] for i in held_out], [other[i] for i in held_out]):
            j = next(k for k, (x, y) in enumerate(zip(m, o)) if x != y)
            seqs.append(m[:j])
            reads.append([m[j], o[j]])
        return seqs, np.asarray(reads, dtype=np.int64)

    def steered_p(
        self,
        loaded: LoadedVariant,
        seqs: list[list[int]],
        read_ids: Int[np.ndarray, "n 2"],
        block: int,
        additions: Float[np.ndarray, "s d"],
    ) -> Float[np.ndarray, "s n"]:
        """P(matching letter) of every item with each addition made to block ``block``'s output."""
        logits = steered_readout(
            loaded.bridge,
            seqs,
            pad_id(loaded.tokenizer),
            component_hook("resid", block),
            additions,
            read_ids,
            self.spec.batch_size,
        )
        return p_matching(logits)

    def run(self) -> Output:
        """Capture, vectors, steering (one piece of work per variant), and the comparison tables."""
        vectors: dict[str, dict[str, np.ndarray]] = {}
        labels: dict[str, list[str]] = {}
        steering: list[dict[str, Any]] = []
        differences: dict[str, dict[str, np.ndarray]] = {}  # set -> variant -> per-item differences (points, n, d)
        for v, (vecs, labs, steered, diffs) in zip(
            self.variants, self.ctx.pieces(self, "variant_piece", [(v,) for v in self.variants], loads_model=True)
        ):
            vectors[v], labels[v] = vecs, labs
            steering += steered
            for name, d in diffs.items():
                differences.setdefault(name, {})[v] = d
        flat = {f"{v}/{s}": arr.astype(np.float32) for v, sets in vectors.items() for s, arr in sets.items()}
        tables = self.tables(vectors, labels, steering) | self.reliability(differences, labels)
        return Output(tables, arrays={"vectors": flat})

    def variant_piece(
        self, v: str
    ) -> tuple[dict[str, np.ndarray], list[str], list[dict[str, Any]], dict[str, np.ndarray]]:
        """Everything about one variant, with its model loaded once: per set its contrast vectors and per-item
        differences (training half), its point labels, and its steering rows."""
        self.ctx.say(f"behaviour vectors: {v}")
        vectors, differences, steering, labels = {}, {}, [], []
        with self.ctx.model(v) as model:
            for s in self.sets:
                matching, other, labels = self.capture(s, v, model, self.ctx.progress)
                train, _ = self.split(s)
                differences[s.name] = matching[:, train] - other[:, train]
                vectors[s.name] = contrast_vectors(matching[:, train], other[:, train])
                if self.spec.steering_items:
                    steering += self.steer(s, v, vectors[s.name], model)
        return vectors, labels, steering, differences

    def tables(
        self, vectors: dict[str, dict[str, np.ndarray]], labels: dict[str, list[str]], steering: list[dict[str, Any]]
    ) -> dict[str, pd.DataFrame]:
        norms, cos_rows, cross_rows, pca_rows = [], [], [], []
        for s in self.sets:
            per_variant = {v: vectors[v][s.name] for v in self.variants}
            for v, vec in per_variant.items():
                norms += norm_rows(s.name, v, vec, labels[v])
                cross_rows += cross_rows_of(s.name, v, vec, labels[v])
            for a, c in combinations(self.variants, 2):
                if per_variant[a].shape == per_variant[c].shape:  # else other depth or width: within-variant only
                    cos_rows += cosine_rows(s.name, a, c, per_variant[a], per_variant[c], labels[a])
            if len({vec.shape[1] for vec in per_variant.values()}) == 1:
                pca_rows += pca_rows_of(s.name, per_variant, labels)
        return {
            "behaviour_vectors": pd.DataFrame(norms),
            "behaviour_cosine": pd.DataFrame(
                cos_rows, columns=["behaviour", "pair", "a", "b", "layer", "label", "cosine"]
            ),
            "behaviour_cross": pd.DataFrame(cross_rows),
            "behaviour_pca": pd.DataFrame(pca_rows),
            "behaviour_steering": pd.DataFrame(steering, columns=STEERING_COLUMNS),
        }

    def reliability(
        self, differences: dict[str, dict[str, np.ndarray]], labels: dict[str, list[str]]
    ) -> dict[str, pd.DataFrame]:
        """Split-half reliability of every variant's vector, and between-variant cosines at the same half size."""
        rows, cross = [], []
        for behaviour, per_variant in differences.items():
            shapes = {d.shape for d in per_variant.values()}
            if len(shapes) > 1 or next(iter(shapes))[1] < 4:  # other depth or width, or too few items to halve
                continue
            within, between = split_half_cosines(per_variant, self.spec.reliability_splits, self.config.seed)
            for v, cos in within.items():
                rows += band_rows({"behaviour": behaviour, "variant": v}, cos, labels[v])
            for (a, b), cos in between.items():
                cross += band_rows({"behaviour": behaviour, "pair": f"{a}→{b}"}, cos, labels[a])
        return {"behaviour_reliability": pd.DataFrame(rows), "behaviour_half_cosine": pd.DataFrame(cross)}


def steering_stats(items: np.ndarray, base: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean P(matching) over the held-out items and its shift from the unsteered run, each with a bootstrap CI over
    the items (the same resamples for both)."""
    p_low, p_high = bootstrap_mean_ci(items, n_boot=n_boot, seed=seed)
    shift_low, shift_high = bootstrap_mean_ci(items - base, n_boot=n_boot, seed=seed)
    return {
        "p_matching": float(items.mean()),
        "p_ci_low": float(p_low),
        "p_ci_high": float(p_high),
        "shift": float((items - base).mean()),
        "shift_ci_low": float(shift_low),
        "shift_ci_high": float(shift_high),
        "n_items": int(items.size),
    }


def band_rows(keys: dict[str, str], cosines: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """Mean and 95% band (2.5th-97.5th percentile over the splits) of a (splits, points) cosine array, per point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a zero vector (NaN) at every split, e.g. at the embedding
        mean = np.nanmean(cosines, axis=0)
        low, high = np.nanquantile(cosines, [0.025, 0.975], axis=0)
    return [
        keys | {"layer": i, "label": labels[i], "mean": float(mean[i]), "low": float(low[i]), "high": float(high[i])}
        for i in range(cosines.shape[1])
    ]


def norm_rows(behaviour: str, variant: str, vec: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """The vector's norm at each residual point."""
    return [
        {"behaviour": behaviour, "variant": variant, "layer": i, "label": labels[i], "norm": float(np.linalg.norm(v))}
        for i, v in enumerate(vec)
    ]


def cross_rows_of(behaviour: str, variant: str, vec: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """Cosine between the vector at every two residual points of one variant."""
    cross = cross_layer_cosine(vec)
    return [
        {
            "behaviour": behaviour,
            "variant": variant,
            "layer_a": i,
            "layer_b": j,
            "label_a": labels[i],
            "label_b": labels[j],
            "cosine": float(cross[i, j]),
        }
        for i in range(cross.shape[0])
        for j in range(cross.shape[1])
    ]


def cosine_rows(
    behaviour: str, a: str, b: str, vec_a: np.ndarray, vec_b: np.ndarray, labels: list[str]
) -> list[dict[str, Any]]:
    """Cosine between two variants' vectors at each residual point."""
    cos = layerwise_cosine(vec_a, vec_b)
    return [
        {"behaviour": behaviour, "pair": f"{a}→{b}", "a": a, "b": b, "layer": i, "label": labels[i], "cosine": float(c)}
        for i, c in enumerate(cos)
    ]


def pca_rows_of(behaviour: str, vectors: dict[str, np.ndarray], labels: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every variant's vectors at every residual point in one shared 2-D PCA."""
    coords, ratio = vector_pca(vectors)
    return [
        {
            "behaviour": behaviour,
            "variant": v,
            "layer": i,
            "label": labels[v][i],
            "pc1": float(xy[i, 0]),
            "pc2": float(xy[i, 1]),
            "explained_pc1": float(ratio[0]),
            "explained_pc2": float(ratio[1]),
        }
        for v, xy in coords.items()
        for i in range(xy.shape[0])
    ]


def blocks_of(table: pd.DataFrame) -> pd.DataFrame:
    """The rows at block outputs (not the embedding, not the final norm), in depth order."""
    return table[~table["label"].isin(["embed", "final"])].sort_values("layer")


def below_band(results: Any, behaviour: str, pair: str) -> tuple[int, int] | None:
    """(blocks where the between-variant cosine at half the items is below both variants' split-half band, blocks)."""
    half, rel = results.tables.get("behaviour_half_cosine"), results.tables.get("behaviour_reliability")
    if half is None or rel is None or half.empty:
        return None
    h = blocks_of(half[(half["behaviour"] == behaviour) & (half["pair"] == pair)]).dropna(subset=["mean"])
    if h.empty:
        return None
    a, b = pair.split("→")
    low = rel[rel["behaviour"] == behaviour].pivot_table(index="layer", columns="variant", values="low")
    floor = low[[a, b]].min(axis=1).reindex(h["layer"]).to_numpy()
    return int((h["mean"].to_numpy() < floor).sum()), len(h)


def cosine_summary(results: Any) -> pd.DataFrame:
    """Per behaviour and pair: cosine at the first and last block, its minimum and where, its mean, and at how many
    blocks the direction moved more than resampling the items moves it (split-half band)."""
    rows = []
    for (b, pair), g in results.tables["behaviour_cosine"].groupby(["behaviour", "pair"], sort=False):
        blocks = blocks_of(g).dropna(subset=["cosine"])
        if blocks.empty:
            continue
        low = blocks.loc[blocks["cosine"].idxmin()]
        below = below_band(results, b, pair)
        rows.append(
            {
                "behaviour": b,
                "pair": pair,
                "cos first block": float(blocks["cosine"].iloc[0]),
                "min cos": float(low["cosine"]),
                "at block": low["label"],
                "cos last block": float(blocks["cosine"].iloc[-1]),
                "mean cos": float(blocks["cosine"].mean()),
                "blocks below the split-half band": f"{below[0]}/{below[1]}" if below else "n/a",
            }
        )
    return pd.DataFrame(rows)


def steering_verdict(g: pd.DataFrame) -> str:
    """Which blocks steer reliably: +c raises and -c lowers P(matching), both CIs excluding 0."""
    plus = g[g["scale"] > 0].set_index("block")
    minus = g[g["scale"] < 0].set_index("block")
    reliable = [int(k) for k in plus.index if plus.loc[k, "shift_ci_low"] > 0 and minus.loc[k, "shift_ci_high"] < 0]
    return f"steers at blocks {', '.join(map(str, reliable))}" if reliable else "no reliable steering at these blocks"


def steering_summary(steering: pd.DataFrame) -> pd.DataFrame:
    """Per behaviour and variant: P(matching) unsteered with its CI, the largest shifts, how many blocks move as
    expected, and the verdict."""
    rows = []
    for (b, v), g in steering.groupby(["behaviour", "variant"], sort=False):
        plus = g[g["scale"] > 0].set_index("block")["shift"]
        minus = g[g["scale"] < 0].set_index("block")["shift"]
        base = g[g["scale"] == 0].iloc[0]
        rows.append(
            {
                "behaviour": b,
                "variant": v,
                "P(matching)": f"{base['p_matching']:.2f} [{base['p_ci_low']:.2f}, {base['p_ci_high']:.2f}]",
                "max shift +c": float(plus.max()),
                "min shift −c": float(minus.min()),
                "blocks with the expected signs": f"{int(((plus > 0) & (minus < 0)).sum())}/{len(plus)}",
                "verdict": steering_verdict(g),
            }
        )
    return pd.DataFrame(rows)


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    out = {}
    cosine, steering = results.tables.get("behaviour_cosine"), results.tables.get("behaviour_steering")
    if cosine is not None and len(cosine):
        out[
            "Behaviour vectors: cosine between variants per block (split-half band: two halves of the items, one "
            "variant)"
        ] = cosine_summary(results)
    if steering is not None and len(steering):
        out["Steering check: shift in P(matching answer) with ± c × vector (95% CIs over held-out items)"] = (
            steering_summary(steering)
        )
    return out


def findings(results: Any) -> list[str]:
    """Per behaviour: whether the variants' vectors differ beyond their split-half band, and whether steering works."""
    out = []
    cosine, steering = results.tables.get("behaviour_cosine"), results.tables.get("behaviour_steering")
    if cosine is not None and len(cosine):
        for _, r in cosine_summary(results).iterrows():
            out.append(
                f"The {r['behaviour']} vectors of {r['pair']} have mean cosine {r['mean cos']:.2f} over the blocks "
                f"(min {r['min cos']:.2f} at block {r['at block']}); read at half the items, they fall below both "
                f"variants' split-half band at {r['blocks below the split-half band']} blocks."
            )
    if steering is not None and len(steering):
        for _, r in steering_summary(steering).iterrows():
            out.append(
                f"Steering {r['variant']} toward {r['behaviour']}: {r['verdict']} "
                f"(unsteered P(matching) {r['P(matching)']})."
            )
    return out


EXPERIMENT = Experiment(
    name="behaviour",
    version="2",
    settings=lambda config: config.behaviour,
    runner=BehaviourRun,
    tables=(
        "behaviour_vectors",
        "behaviour_cosine",
        "behaviour_cross",
        "behaviour_pca",
        "behaviour_steering",
        "behaviour_reliability",
        "behaviour_half_cosine",
    ),
    artifacts=("vectors",),
    check=lambda config: behaviour_sets(config.behaviour),
    summaries=summaries,
    findings=findings,
)
