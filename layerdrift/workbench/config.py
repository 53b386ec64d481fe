"""Experiment configuration: one TOML or YAML file, validated with pydantic.

Every error names the offending field (``variants[1].quantization``) and the file.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from layerdrift.concepts.templates import template_ensemble, template_set_name
from layerdrift.core.hashing import fingerprint
from layerdrift.core.objectstore import RunPath, run_location
from layerdrift.errors import LayerdriftError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DType = Literal["auto", "float32", "float16", "bfloat16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantSpec(_Strict):
    """One model variant: a name, where its weights come from, and how to load it."""

    name: str = Field(pattern=NAME_PATTERN)
    source: str = Field(min_length=1, description="embedded alias | Hugging Face id | local folder | .gguf file")
    revision: str | None = None
    gguf_file: str | None = Field(None, description="GGUF file name inside a hub repo or folder")
    dtype: DType = "auto"
    device: str | None = None
    quantization: Literal["none", "nf4", "int8"] = "none"
    double_quant: bool = False
    compute_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    attn_implementation: Literal["auto", "eager", "sdpa"] = Field(
        "auto", description="auto: sdpa on CUDA unless a captured hook reads inside attention, else eager"
    )
    chat_template: bool = False
    prepend_bos: Literal["auto", "yes", "no"] = "auto"
    reference: bool = False
    noise_floor: bool = Field(
        False,
        description="same weights as the reference under another dtype/attention: the floor every "
        "curve is read against",
    )


class PromptSetSpec(_Strict):
    """A vocabulary of terms poured into a prompt template, or into each template of an ensemble (``templates``: a
    list, or a built-in ensemble's name such as ``"default"``; see ``layerdrift.concepts.templates``)."""

    name: str = Field(pattern=NAME_PATTERN)
    vocabulary: str = "embeddingdrift-235"
    template: str = "The concept of {term} is"
    templates: list[str] | None = Field(
        None, description="an ensemble: every analysis reads the first; drift is also reported per template and pooled"
    )

    @model_validator(mode="before")
    @classmethod
    def _ensemble(cls, data: Any) -> Any:
        """A named ensemble becomes its list; with an ensemble, ``template`` is its first template."""
        if not isinstance(data, dict) or data.get("templates") is None:
            return data
        templates = data["templates"]
        if isinstance(templates, str):
            try:
                templates = template_ensemble(templates)
            except LayerdriftError as e:
                raise ValueError(str(e)) from None
        first = templates[0] if isinstance(templates, list) and templates else None
        if data.get("template", first) != first:
            raise ValueError("give either template or templates, not both (the first of templates is the seed)")
        return {**data, "templates": templates, "template": first}

    @field_validator("template")
    @classmethod
    def _has_term(cls, v: str) -> str:
        if "{term}" not in v:
            raise ValueError("the template must contain '{term}'")
        return v

    @field_validator("templates")
    @classmethod
    def _each_has_term(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("an ensemble needs at least two templates (one template: use template)")
        if len(set(v)) != len(v):
            raise ValueError("a template is listed twice")
        for i, t in enumerate(v):
            if "{term}" not in t:
                raise ValueError(f"template {i + 1} ({t!r}) must contain '{{term}}'")
        return v

    def captured(self) -> list[PromptSetSpec]:
        """The prompt sets captured for it: itself, or one per template of its ensemble (the first under its own
        name, the others as ``NAME.tN``)."""
        if self.templates is None:
            return [self]
        return [
            PromptSetSpec(name=template_set_name(self.name, i), vocabulary=self.vocabulary, template=t)
            for i, t in enumerate(self.templates, start=1)
        ]


class CaptureSpec(_Strict):
    """Which hook points and token positions to capture, and in what batches."""

    hooks: list[str] = ["residual"]
    positions: list[str] = ["last"]
    batch_size: int = Field(16, ge=1, le=4096)
    padding_side: Literal["right", "left"] = "right"

    @field_validator("positions")
    @classmethod
    def _positions_parse(cls, v: list[str]) -> list[str]:
        from layerdrift.hooks.positions import parse_position

        for p in v:
            parse_position(p)
        if len(set(v)) != len(v):
            raise ValueError("positions are listed twice")
        return v


class AnalysisSpec(_Strict):
    """Settings of the analyses and the report."""

    headline_layer: int | Literal["final"] = Field(
        "final", description="'final' = final-norm output; an int = residual point index (0 = embedding)"
    )
    k: int = Field(10, ge=1, description="neighbours for k-NN Jaccard")
    top_n: int = Field(30, ge=1)
    n_boot: int = Field(1000, ge=100)
    n_perm: int = Field(5000, ge=100)
    umap_layers: Literal["all", "headline"] | list[int] = "all"
    umap_neighbors: int = Field(15, ge=2)
    umap_min_dist: float = Field(0.1, ge=0.0)
    map_alignment: Literal["layers", "none"] = Field(
        "layers", description="layers: each layer's map carried over from the previous one; none: fitted on its own"
    )
    align: Literal["none", "procrustes"] = Field(
        "none", description="procrustes: report aligned drift between variants of different width"
    )
    prompt_set: str | None = Field(None, description="prompt set to analyse (default: the first)")
    png: bool = Field(True, description="also render each figure to PNG (needs Chromium)")


class PatchingSpec(_Strict):
    """Activation patching between a receiver variant and each compared variant (both directions)."""

    prompts: str = Field("flip-probes", description="built-in patch set or a JSONL file of prompt + target")
    receiver: str | None = Field(None, description="variant patched into (default: the reference)")
    compare: list[str] | None = Field(None, description="source variants (default: every other non-floor variant)")
    components: list[Literal["resid", "attn", "mlp"]] = Field(
        ["resid"], min_length=1, description="block output, attention output or MLP output"
    )
    positions: int = Field(
        4, ge=1, le=64, description="patch each of the last N token positions alone, plus all positions at once"
    )
    layers: Literal["all"] | list[int] = "all"
    select: Literal["flips", "all"] = Field(
        "flips", description="flips: only prompts whose greedy answers differ between the two variants"
    )
    max_prompts: int = Field(24, ge=1, description="at most this many prompts per pair (first ones in file order)")
    max_new_tokens: int = Field(4, ge=1, le=64, description="greedy answer length used to find flips")
    both_directions: bool = True
    batch_size: int = Field(32, ge=1, le=4096)
    min_gap: float = Field(
        1.0,
        ge=0,
        description="prompts whose two clean values differ by less than this (nats) are near-ties, left out of the "
        "normalised effects and counted (0 keeps every prompt)",
    )
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples of the prompts for the effects' CIs")


class BehaviourSpec(_Strict):
    """Behaviour vectors (contrastive activation addition) per variant, compared across variants, and a steering
    check."""

    sets: list[str] = Field(
        ["myopic-reward", "power-seeking", "survival-instinct", "corrigibility", "sycophancy", "self-awareness"],
        min_length=1,
        description="built-in behaviour sets or JSONL files in the model-written-evals format",
    )
    template: str = Field(
        "{question}\n\nAnswer:", description="prompt format, the same for every variant; holds {question}"
    )
    answer_prefix: str = Field(" (", description="text between the prompt and the answer letter")
    variants: list[str] | None = Field(None, description="default: every non-floor variant")
    max_items: int = Field(40, ge=2, description="items per set (the first ones)")
    steering_items: int = Field(
        10, ge=0, description="items held out of the vector and used for the steering check (0: no check)"
    )
    steering_layers: Literal["auto"] | list[int] = Field(
        "auto", description="blocks to steer at; auto = 4 evenly spaced blocks between 1/4 and 3/4 of the depth"
    )
    steering_scale: float = Field(
        4.0, gt=0, description="c in +/- c * vector, the vector being the raw mean difference"
    )
    batch_size: int = Field(32, ge=1, le=4096)
    reliability_splits: int = Field(
        100, ge=2, description="random halvings of the items for the vectors' split-half reliability"
    )
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples of the held-out items for the steering CIs")

    @field_validator("template")
    @classmethod
    def _has_question(cls, v: str) -> str:
        if "{question}" not in v:
            raise ValueError("the template must contain '{question}'")
        return v


class LensSpec(_Strict):
    """Drift read in output space: the logit lens of every variant at every residual point (its own head, and the
    reference's head on every variant), the variants' next-token distributions compared, and where along depth each
    pair's difference starts (the localisation table)."""

    top_k: int = Field(5, ge=1, le=50, description="top tokens kept per prompt and residual point")
    block_rows: int | None = Field(
        None, ge=1, description="prompts read out at once (default: as many as keep 2^24 logits per block)"
    )


class ManifoldSpec(_Strict):
    """Feature-manifold probes: supervised MDS at every residual point and aligned token of templated probe sets, per
    variant."""

    sets: list[str] = Field(
        ["birthday"], min_length=1, description="built-in probe sets (birthday, months, numbers) or JSON files"
    )
    n_prompts: int = Field(
        300, ge=20, le=20000, description="prompts generated per built-in set (a file: its first n items)"
    )
    variants: list[str] | None = Field(None, description="default: every non-floor variant")
    reference: str | None = Field(
        None, description="variant the difference maps subtract (default: the run's reference)"
    )
    shape: Literal["circular", "discrete_circular", "linear", "cluster"] | None = Field(
        None, description="shape hypothesis (default: each set's own)"
    )
    components: int | None = Field(
        None, ge=1, le=8, description="target dimensions (default: 2 for circles, 1 for lines)"
    )
    folds: int = Field(5, ge=2, le=20)
    ridge: float = Field(
        0.1, gt=0, description="ridge strength relative to the mean squared norm of a standardised row"
    )
    batch_size: int = Field(32, ge=1, le=4096)


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class FinetuneSpec(_Strict):
    """Supervised fine-tuning of a causal LM on an instruction data set, saving checkpoints on a schedule."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="default: the data set's name")
    base: str = Field(
        "gemma3-270m", min_length=1, description="embedded alias | Hugging Face id | local folder | .gguf file"
    )
    base_revision: str | None = None
    data: str = Field(
        "helpful", description="built-in objective (helpful, harmless, mixed) or a JSONL file of prompt + response"
    )
    method: Literal["lora", "full"] = "lora"
    lora_rank: int = Field(8, ge=1, le=256)
    lora_alpha: float = Field(16.0, gt=0)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1)
    steps: int = Field(32, ge=1, le=1_000_000)
    checkpoints: str | list[int] = Field(
        "dense-early", description="dense-early (0, 1, 2, 4, 8, ... and the last), every-N, or a list of steps"
    )
    batch_size: int = Field(8, ge=1, le=1024)
    learning_rate: float | None = Field(None, gt=0, description="default: 1e-3 for LoRA, 2e-5 for full weights")
    max_length: int = Field(
        128, ge=8, le=8192, description="tokens per example (prompt + response); longer responses are cut"
    )
    eval_examples: int = Field(
        16, ge=1, description="examples held out of training for the evaluation loss at each checkpoint"
    )
    seed: int = 0
    device: str = "auto"
    dtype: DType = "auto"
    out: str = Field("runs/finetune/{name}", description="checkpoint folder; {name} is filled in")

    @property
    def run_name(self) -> str:
        return self.name or Path(self.data).stem

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (1e-3 if self.method == "lora" else 2e-5)

    def out_dir(self, override: str | Path | None = None) -> Path:
        return Path(override) if override is not None else Path(self.out.format(name=self.run_name))


class SeriesSpec(_Strict):
    """An ordered checkpoint series that expands into variants: a fine-tune run here, a folder of checkpoints, or a hub
    id
    with revisions."""

    name: str = Field(pattern=NAME_PATTERN)
    finetune: FinetuneSpec | None = None
    source: str | None = Field(
        None, description="folder of checkpoints (step-N / checkpoint-N subfolders) or a Hugging Face id"
    )
    revisions: list[str] | None = Field(None, description="hub revisions in training order (with a hub id as source)")
    steps: list[int] | None = Field(None, description="use only these checkpoint steps (default: all)")
    chat_template: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> SeriesSpec:
        if (self.finetune is None) == (self.source is None):
            raise ValueError(
                f"series '{self.name}' needs exactly one of `finetune` (train here) or `source` (existing checkpoints)"
            )
        if self.revisions is not None and self.source is None:
            raise ValueError(f"series '{self.name}' lists revisions but no hub id in `source`")
        return self


class TrajectorySpec(_Strict):
    """Analyses along checkpoint series, and persistent homology of every variant's final-token states."""

    n_perm: int = Field(2000, ge=100, description="random checkpoint orderings for the early-concentration test")
    topology: bool = True
    topology_layers: int | list[int] = Field(
        5,
        description="an int: that many evenly spaced residual points (first block .. final norm); a "
        "list: point indices (0 = embedding)",
    )
    subsamples: int = Field(64, ge=1, le=10_000, description="random subsets of the prompts per diagram distribution")
    subsample_size: int = Field(160, ge=8, description="points per subset (capped at the number of prompts)")
    distance_subsamples: int = Field(
        16, ge=1, description="paired subsamples averaged in each distance between diagrams (the first ones)"
    )
    engine: Literal["giotto-ph", "ripser"] = "giotto-ph"
    umap_layer: int | Literal["final"] = Field("final", description="residual point of the UMAP across checkpoints")


class ExecutionSpec(_Strict):
    """Where the work runs: in this process (``local``) or as tasks on a Ray cluster (``ray``). It never changes a
    number, so it is not part of the run's identity (``ExperimentConfig.hash``)."""

    engine: Literal["local", "ray"] = "local"
    address: str | None = Field(
        None, description="ray: 'auto' (a cluster started with `ray start`), 'ray://host:10001', or none: start one"
    )
    num_cpus: int | None = Field(None, ge=1, description="ray, no address: CPUs of the local cluster (default: all)")
    cpus_per_task: float = Field(1.0, gt=0)
    gpus_per_variant: float = Field(0.0, ge=0, description="GPUs each task that loads a model asks for")
    max_retries: int = Field(3, ge=0, description="times a task is retried when its worker dies")
    batches_per_task: int | None = Field(
        None, ge=1, description="ray: split a capture into tasks of this many batches (default: one per prompt set)"
    )


class ExperimentConfig(_Strict):
    """The whole experiment: variants x prompt sets x capture settings, and where results go."""

    name: str = Field("layerdrift-run", pattern=NAME_PATTERN)
    out: str = "runs/{name}"
    seed: int = 0
    device: str = "auto"
    dtype: DType = "auto"
    variants: list[VariantSpec] = Field(default_factory=list)
    prompt_sets: list[PromptSetSpec] = Field(default_factory=lambda: [PromptSetSpec(name="concepts")], min_length=1)
    capture: CaptureSpec = CaptureSpec()
    execution: ExecutionSpec = ExecutionSpec()
    analysis: AnalysisSpec = AnalysisSpec()
    patching: PatchingSpec | None = None
    behaviour: BehaviourSpec | None = None
    manifold: ManifoldSpec | None = None
    lens: LensSpec | None = Field(None, description="logit-lens read-outs, output-space drift and localisation")
    series: list[SeriesSpec] = Field(default_factory=list)
    trajectory: TrajectorySpec | None = Field(
        None, description="trajectory + topology settings; on by default when the config has series"
    )

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if not self.variants and not self.series:
            raise ValueError("the config needs at least one variant or one series")
        for label, names in (
            ("variant", [v.name for v in self.variants]),
            ("prompt set", [p.name for p in self.captured_prompt_sets()]),
            ("series", [s.name for s in self.series]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{label} name {dup[0]!r} is used twice; names must be unique")
        refs = [v.name for v in self.variants if v.reference]
        if len(refs) > 1:
            raise ValueError(f"only one variant can be the reference, but {refs} all say reference = true")
        captured = [p.name for p in self.captured_prompt_sets()]
        if self.analysis.prompt_set is not None and self.analysis.prompt_set not in captured:
            wanted = self.analysis.prompt_set
            raise ValueError(f"analysis.prompt_set {wanted!r} is not one of the prompt sets {captured}")
        if any(v.noise_floor and v.reference for v in self.variants):
            raise ValueError("the reference variant cannot also be the noise-floor variant")
        known = {v.name for v in self.variants}
        named = []
        if self.patching:
            named += [("patching.receiver", self.patching.receiver)] + [
                ("patching.compare", n) for n in self.patching.compare or []
            ]
        if self.behaviour:
            named += [("behaviour.variants", n) for n in self.behaviour.variants or []]
        if self.manifold:
            named += [("manifold.reference", self.manifold.reference)] + [
                ("manifold.variants", n) for n in self.manifold.variants or []
            ]
        for field, name in named:
            if name is not None and name not in known:
                raise ValueError(f"{field} names variant {name!r}, which is not one of {sorted(known)}")
        return self

    def captured_prompt_sets(self) -> list[PromptSetSpec]:
        """Every prompt set as captured: an ensemble's templates each as a prompt set of its own."""
        return [c for p in self.prompt_sets for c in p.captured()]

    def analysed_prompt_set(self) -> PromptSetSpec:
        """The prompt set the analyses read (``analysis.prompt_set``, else the first), as captured."""
        name = self.analysis.prompt_set or self.prompt_sets[0].name
        return next(p for p in self.captured_prompt_sets() if p.name == name)

    def ensemble_of_analysed(self) -> PromptSetSpec | None:
        """The prompt set whose template ensemble the analysed set opens (it is that set's first template), or None."""
        name = self.analysis.prompt_set or self.prompt_sets[0].name
        return next((p for p in self.prompt_sets if p.name == name and p.templates), None)

    def non_floor_variants(self) -> list[str]:
        """Variants the experiments compare by default: no noise floor, and of each series only its last checkpoint."""
        inner = {v for s in self.series_variants().values() for v in s[:-1]}
        return [v.name for v in self.variants if not v.noise_floor and v.name not in inner]

    def series_variants(self) -> dict[str, list[str]]:
        """Each expanded series' variant names in training order (empty before ``expand_series``)."""
        return {s.name: self.variants_of_series(s.name) for s in self.series if self.variants_of_series(s.name)}

    def variants_of_series(self, series: str) -> list[str]:
        prefix = f"{series}.step"
        return [v.name for v in self.variants if v.name.startswith(prefix) and v.name[len(prefix) :].isdigit()]

    @property
    def reference(self) -> str:
        """Name of the reference variant (the one marked, else the first)."""
        return next((v.name for v in self.variants if v.reference), self.variants[0].name)

    def variant(self, name: str) -> VariantSpec:
        return next(v for v in self.variants if v.name == name)

    def out_dir(self, override: str | Path | None = None) -> RunPath:
        """The run folder: ``--out`` if given, else ``out`` with the name filled in; a path or an fsspec URL."""
        return run_location(override if override is not None else self.out.format(name=self.name))

    def hash(self) -> str:
        """sha256 of the canonical JSON of the config (the run's identity; where it runs is not part of it)."""
        return fingerprint(self.model_dump(mode="json", exclude={"execution"}))


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def explain_validation_error(err: ValidationError, where: str, root: type[BaseModel] | None = None) -> str:
    """One sentence per problem, naming the field and (for typos) the closest valid name."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    path = _field_path(loc)
    if first["type"] == "extra_forbidden":
        model = _model_at(loc, root or ExperimentConfig)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
            if close:
                hint = f"; did you mean '{close[0]}'?"
        msg = f"unknown field '{path}'{hint}"
    else:
        msg = f"field '{path}': {first['msg']}"
    more = len(err.errors()) - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''} after this one)" if more else ""
    return f"{where}: {msg}{tail}."


def config_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Validate a plain dict (e.g. parsed TOML) into an ExperimentConfig."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise LayerdriftError(explain_validation_error(err, where)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The top-level table of a .toml / .yaml / .yml file, or one sentence on what is wrong with it."""
    p = Path(path)
    if not p.is_file():
        raise LayerdriftError(f"config file {str(p)!r} does not exist; pass the path of a .toml or .yaml file.")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise LayerdriftError(f"config file {str(p)!r} must end in .toml, .yaml or .yml.")
    except (tomllib.TOMLDecodeError, ValueError) as err:
        if isinstance(err, LayerdriftError):
            raise
        raise LayerdriftError(f"config file {str(p)!r} is not valid {p.suffix[1:].upper()}: {err}.") from None
    except Exception as err:  # yaml.YAMLError has no common base with the above
        raise LayerdriftError(f"config file {str(p)!r} could not be parsed: {err}.") from None
    if not isinstance(data, dict):
        raise LayerdriftError(f"config file {str(p)!r} must hold a table of settings at the top level.")
    return data


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a .toml / .yaml / .yml experiment file."""
    return config_from_dict(read_config_file(path), where=f"config file {str(path)!r}")


def load_finetune_specs(path: str | Path | None) -> list[FinetuneSpec]:
    """The fine-tunes of a file: a fine-tune config (its fields at the top level), or a run config's series that
    fine-tune."""
    if path is None:
        return [FinetuneSpec()]
    data = read_config_file(path)
    if "variants" in data or "series" in data:
        specs = [s.finetune for s in load_config(path).series if s.finetune is not None]
        if not specs:
            raise LayerdriftError(
                f"config file {str(path)!r} is a run config without any series that fine-tunes; "
                "add [series.finetune] or pass a fine-tune config."
            )
        return specs
    try:
        return [FinetuneSpec.model_validate(data)]
    except ValidationError as err:
        raise LayerdriftError(explain_validation_error(err, f"fine-tune config {str(path)!r}", FinetuneSpec)) from None


def default_config() -> ExperimentConfig:
    """The embedded default: SmolLM2-135M-Instruct vs its NF4 and INT8 copies + a bf16 noise floor."""
    text = (Path(__file__).parent / "default.toml").read_text(encoding="utf-8")
    return config_from_dict(tomllib.loads(text), where="the built-in default config")
