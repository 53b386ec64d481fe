"""Extraction: config -> variants -> hooks -> run store, one model in memory at a time, resumable."""

from __future__ import annotations

import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerdrift.concepts.vocabulary import Vocabulary, load_vocabulary, render_prompts
from layerdrift.core.engine import Engine, chunks, open_engine
from layerdrift.core.files import RunLock
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import residual_hook_names
from layerdrift.core.objectstore import RunPath, run_location
from layerdrift.core.progress import progress_bars
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.attention import needs_eager_attention
from layerdrift.hooks.capture import capture_batch, expand_hook_names
from layerdrift.hooks.positions import PositionSpec, parse_position, resolve_position
from layerdrift.hooks.prompts import EncodedPrompt, encode_prompt, pad_batch, pad_id
from layerdrift.workbench.config import ExperimentConfig, PromptSetSpec, VariantSpec
from layerdrift.workbench.models.identity import package_versions, variant_identity
from layerdrift.workbench.models.loading import LoadedVariant, free, load_variant, resolve_source
from layerdrift.workbench.store.heads import keep_variant_head
from layerdrift.workbench.store.runstore import CaptureJob, RunStore, batch_list, is_run_folder


def capture_fingerprint(
    config: ExperimentConfig, spec: VariantSpec, prompt_set: PromptSetSpec, prompts: list[str]
) -> str:
    """What a capture depends on; an unchanged fingerprint means the cached arrays are reused."""
    return fingerprint(
        {
            **variant_identity(config, spec),
            "prompts": fingerprint(prompts),
            "template": prompt_set.template,
            "capture": config.capture.model_dump(mode="json"),
        }
    )


def term_token_count(enc: EncodedPrompt, prompt: str, template: str, term: str) -> int:
    """How many tokens cover the term's characters in the encoded prompt."""
    start = enc.text.find(prompt) + template.index("{term}")
    end = start + len(term)
    return sum(1 for a, b in enc.offsets if a < end and b > start and b > a)


def encode_prompt_set(
    loaded: LoadedVariant, spec: VariantSpec, ps: PromptSetSpec, vocab: Vocabulary, positions: list[PositionSpec]
) -> tuple[list[EncodedPrompt], dict[str, list[list[int]]], dict[str, Any]]:
    """Tokenize every prompt, resolve every position, and describe the tokenization for the store."""
    prompts = render_prompts(vocab, ps.template)
    encoded, chosen = [], {p.spec: [] for p in positions}
    counts = []
    for i, (prompt, term) in enumerate(zip(prompts, vocab.terms)):
        enc = encode_prompt(loaded.tokenizer, prompt, spec.chat_template, spec.prepend_bos)
        where = f"prompt {i} ({prompt!r}) of prompt set '{ps.name}' for variant '{spec.name}'"
        for p in positions:
            chosen[p.spec].append(resolve_position(p, enc.text, enc.offsets, term, where))
        encoded.append(enc)
        counts.append(term_token_count(enc, prompt, ps.template, term))
    multi = {t: c for t, c in zip(vocab.terms, counts) if c != 1}
    tokens = {
        "texts": [e.text for e in encoded],
        "ids": [e.ids for e in encoded],
        "tokens": [e.tokens(loaded.tokenizer) for e in encoded],
        "lengths": [len(e.ids) for e in encoded],
        "positions": chosen,
        "term_token_counts": counts,
    }
    return encoded, chosen, {"tokens": tokens, "multi_token_terms": multi}


def gather_index(chosen: list[list[int]], shifts: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, width) padded-coordinate index and validity mask from per-prompt real-token indices."""
    index = torch.zeros((len(chosen), width), dtype=torch.long)
    valid = torch.zeros((len(chosen), width), dtype=torch.bool)
    for row, (idx, shift) in enumerate(zip(chosen, shifts)):
        index[row, : len(idx)] = torch.tensor(idx) + shift
        valid[row, : len(idx)] = True
    return index, valid


def run_capture(
    loaded: LoadedVariant,
    job: CaptureJob,
    encoded: list[EncodedPrompt],
    chosen: dict[str, list[list[int]]],
    positions: list[PositionSpec],
    hooks: list[str],
    padding_side: str,
    todo: list[int],
    progress: Any = None,
) -> None:
    """Capture the batches ``todo`` of a job into the store."""
    done = job.n_batches - len(todo)
    task = progress.add_task(f"{loaded.name}", total=job.n_batches, completed=done) if progress else None
    pid = pad_id(loaded.tokenizer)
    max_len = max(len(e.ids) for e in encoded)
    for batch in todo:
        rows = range(batch * job.batch_size, min(len(encoded), (batch + 1) * job.batch_size))
        ids, mask, shifts = pad_batch([encoded[r] for r in rows], pid, padding_side)  # type: ignore[arg-type]
        # One forward gathers every position spec: concatenate their indices along the slot axis.
        slots, spans = [], {}
        for p in positions:
            width = max_len if p.kind == "all" else 1
            idx, ok = gather_index([chosen[p.spec][r] for r in rows], shifts, width)
            spans[p.spec] = (sum(s[0].shape[1] for s in slots), width)
            slots.append((idx, ok))
        index = torch.cat([s[0] for s in slots], dim=1)
        valid = torch.cat([s[1] for s in slots], dim=1)
        acts = capture_batch(loaded.bridge, ids, mask, hooks, index, valid)
        arrays = {}
        for p in positions:
            start, width = spans[p.spec]
            for hook, values in acts.items():
                part = values[:, start : start + width]
                arrays[(p.folder, hook)] = part[:, 0] if p.kind != "all" else part
        job.write_batch(batch, arrays)
        if progress:
            progress.update(task, advance=1)


def capture_token_sequences(
    loaded: LoadedVariant,
    job: CaptureJob,
    seqs: list[list[int]],
    hooks: list[str],
    position: str,
    progress: Any = None,
    chosen: list[list[int]] | None = None,
) -> None:
    """Capture token-id sequences (left-padded) at every real token (``all``), the last one (``last``),
    or the same number of given token indices per sequence (``chosen``, stored under ``position``), resumably."""
    done = job.prepare()
    pid = pad_id(loaded.tokenizer)
    width_all = max(len(s) for s in seqs)
    task = (
        progress.add_task(f"{loaded.name} ({job.folder.name})", total=job.n_batches, completed=len(done))
        if progress
        else None
    )
    for batch in range(job.n_batches):
        if batch in done:
            continue
        rows = seqs[batch * job.batch_size : (batch + 1) * job.batch_size]
        encoded = [EncodedPrompt(text="", ids=list(r), offsets=[(0, 0)] * len(r)) for r in rows]
        ids, mask, shifts = pad_batch(encoded, pid, "left")
        if chosen is not None:
            picked, width = chosen[batch * job.batch_size : (batch + 1) * job.batch_size], len(chosen[0])
        else:
            picked = [list(range(len(r))) if position == "all" else [len(r) - 1] for r in rows]
            width = width_all if position == "all" else 1
        index, valid = gather_index(picked, shifts, width)
        acts = capture_batch(loaded.bridge, ids, mask, hooks, index, valid)
        job.write_batch(batch, {(position, h): (v if position != "last" else v[:, 0]) for h, v in acts.items()})
        if progress:
            progress.update(task, advance=1)


def ensure_sequence_capture(
    store: RunStore,
    variant: str,
    prompt_set: str,
    key: str,
    n: int,
    batch_size: int,
    model: Callable[[], LoadedVariant],
    sequences: Callable[[LoadedVariant], list[list[int]]],
    hooks: list[str],
    position: str,
    progress: Any = None,
    chosen: list[list[int]] | None = None,
    **summary: Any,
) -> None:
    """An experiment's capture of token sequences as a store capture: skipped when an intact one exists,
    otherwise (re)captured batch by batch and recorded in the manifest; ``summary`` joins its record."""
    job = CaptureJob(store.capture_folder(variant, prompt_set), key, n, batch_size)
    if job.check_complete()[0]:
        return
    loaded = model()
    seqs = sequences(loaded)
    capture_token_sequences(loaded, job, seqs, hooks, position, progress, chosen=chosen)
    record = {
        "complete": True,
        "hooks": hooks,
        "positions": {position: position},
        "residual_points": [],
        "tokenizer_sha256": loaded.info["tokenizer_sha256"],
        **summary,
    }
    store.record_capture(variant, prompt_set, job.mark_complete(record))


def manifest_base(config: ExperimentConfig, vocabularies: dict[str, Vocabulary]) -> dict[str, Any]:
    """What the manifest records of a config: itself, its hash, variants' roles, versions, prompt sets."""
    return {
        "config": config.model_dump(mode="json"),
        "config_hash": config.hash(),
        "reference": config.reference,
        "noise_floor": [v.name for v in config.variants if v.noise_floor],
        "series": config.series_variants(),
        "packages": package_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "cuda": torch.cuda.is_available()},
        "prompt_sets": {
            ps.name: {
                "vocabulary": vocabularies[ps.name].name,
                "vocabulary_source": vocabularies[ps.name].source,
                "template": ps.template,
                "n": len(vocabularies[ps.name]),
                "terms": list(vocabularies[ps.name].terms),
                "categories": list(vocabularies[ps.name].categories),
            }
            for ps in config.captured_prompt_sets()
        },
    }


def intact_or_todo(jobs: dict[str, CaptureJob], say: Callable[[str], None]) -> list[str]:
    """Prompt sets whose capture is unfinished or damaged (damaged batches are forgotten, to be redone)."""
    todo = []
    for name, job in jobs.items():
        intact, damaged = job.check_complete()
        if damaged:
            say(
                f"capture {job.label}: {batch_list(list(damaged))} cannot be trusted "
                f"({next(iter(damaged.values()))}); recapturing"
            )
        if not intact:
            todo.append(name)
    return todo


def capture_jobs(
    config: ExperimentConfig, spec: VariantSpec, root: RunPath, prompts: dict[str, list[str]]
) -> dict[str, CaptureJob]:
    """The capture job of each prompt set of one variant (what is asked; nothing is read or written)."""
    return {
        ps.name: CaptureJob(
            root / "captures" / spec.name / ps.name,
            capture_fingerprint(config, spec, ps, prompts[ps.name]),
            len(prompts[ps.name]),
            config.capture.batch_size,
        )
        for ps in config.captured_prompt_sets()
    }


@dataclass(frozen=True)
class CaptureTask:
    """One piece of capture work, plain data a worker anywhere can run: a variant, and for each of its prompt sets
    the batches to capture (None: the whole job, prepared and resumed by the task itself)."""

    config: ExperimentConfig
    variant: str
    root: str
    batches: dict[str, list[int] | None]

    @property
    def label(self) -> str:
        parts = [ps if b is None else f"{ps} {batch_list(b)}" for ps, b in self.batches.items()]
        return f"capture of variant '{self.variant}' ({'; '.join(parts)})"


def capture_task(task: CaptureTask, progress: Any = None) -> dict[str, dict[str, Any]]:
    """Load the task's variant in this process, capture its batches (each with its finished-batch marker), free the
    model; returns each prompt set's capture record. Only the driver marks captures complete and writes the
    manifest."""
    config, root = task.config, run_location(task.root)
    spec = config.variant(task.variant)
    vocabularies, prompts = prompt_sets(config)
    jobs = capture_jobs(config, spec, root, prompts)
    loaded = load_variant(spec, config.device, config.dtype, needs_eager_attention(config.capture.hooks))
    try:
        hooks = expand_hook_names(
            config.capture.hooks, loaded.n_layers, loaded.bridge.hook_dict.keys(), f"variant '{spec.name}'"
        )
        records = {}
        for ps in (p for p in config.captured_prompt_sets() if p.name in task.batches):
            job, batches = jobs[ps.name], task.batches[ps.name]
            if batches is None:
                finished = job.prepare()
                todo = [b for b in range(job.n_batches) if b not in finished]
            else:
                finished = set(job.markers())
                todo = [b for b in batches if b not in finished]
            records[ps.name] = capture_prompt_set(
                loaded, spec, ps, vocabularies[ps.name], job, config, hooks, todo, progress
            )
        if config.lens is not None:  # the lens reads this model's head: kept now, not loaded again later
            identity = fingerprint(variant_identity(config, spec))
            tokenizer_sha = loaded.info["tokenizer_sha256"]
            keep_variant_head(root, spec.name, identity, loaded.bridge.original_model, loaded.tokenizer, tokenizer_sha)
        return records
    finally:
        free(loaded)


def capture_prompt_set(
    loaded: LoadedVariant,
    spec: VariantSpec,
    ps: PromptSetSpec,
    vocab: Vocabulary,
    job: CaptureJob,
    config: ExperimentConfig,
    hooks: list[str],
    todo: list[int],
    progress: Any,
) -> dict[str, Any]:
    """Capture batches of one prompt set with a loaded variant; returns the capture's record."""
    positions = [parse_position(p) for p in config.capture.positions]
    encoded, chosen, tok = encode_prompt_set(loaded, spec, ps, vocab, positions)
    run_capture(loaded, job, encoded, chosen, positions, hooks, config.capture.padding_side, todo, progress)
    job.write_tokens(tok["tokens"])
    return {
        "complete": True,
        "hooks": hooks,
        "residual_points": residual_hook_names(loaded.n_layers),
        "positions": {p.spec: p.folder for p in positions},
        "n_prompts": len(encoded),
        "max_len": max(len(e.ids) for e in encoded),
        "multi_token_terms": tok["multi_token_terms"],
        "n_multi_token_terms": len(tok["multi_token_terms"]),
        "tokens_file": str(job.folder.relative_to(job.root) / "tokens.json"),
        "tokenizer_sha256": loaded.info["tokenizer_sha256"],
        "variant_info": loaded.info,
    }


def extract(
    config: ExperimentConfig,
    out: str | Path | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
    engine: Engine | None = None,
) -> RunStore:
    """Capture every (variant, prompt set) of the config into its run folder, reusing finished work.

    Finished captures are verified batch by batch and damaged batches are recaptured. The pieces of capture
    work run on ``engine`` (default: the config's ``execution``): locally one variant at a time, and nothing is
    written to a new folder until the first model loads and its hook names check out; on Ray one task per
    (variant, prompt set), or per range of batches, each loading its own model. Only this process writes the
    manifest. A config with checkpoint series must be expanded first (``layerdrift.training.series.expand_series``).
    """
    say = say or (lambda msg: None if quiet else print(msg, flush=True))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    vocabularies, prompts = checked_inputs(config)
    root = config.out_dir(out)
    with RunLock(root), engine_or_config(engine, config) as ran:
        store = _StoreOnFirstUse(root, config, vocabularies)
        if is_run_folder(root) or ran.name != "local":  # a cluster's workers write into a folder that exists
            store.get()
        jobs = {spec.name: capture_jobs(config, spec, root, prompts) for spec in config.variants}
        tasks = capture_tasks(config, root, jobs, ran, say)
        with progress_bars(quiet) as progress:
            local = ran.name == "local"  # a terminal's progress bars draw in this process only
            bar = None if local or progress is None else progress.add_task("capture tasks", total=len(tasks))

            def finish(i: int, records: dict[str, dict[str, Any]]) -> None:
                for ps, record in records.items():
                    finish_capture(store.get(), jobs[tasks[i].variant][ps], tasks[i].variant, ps, record)
                if bar is not None:
                    progress.update(bar, advance=1)

            ran.map(capture_task, tasks, progress if local else None, ran.model_task, "capture", finish)
        finished = store.get()
        finished.save()
    return finished


def capture_tasks(
    config: ExperimentConfig, root: RunPath, jobs: dict[str, dict[str, CaptureJob]], engine: Engine, say: Callable
) -> list[CaptureTask]:
    """The capture work left: locally one task per variant; on a cluster one per (variant, prompt set), or per
    ``execution.batches_per_task`` batches (those jobs are prepared here, before any task starts)."""
    tasks = []
    per_task = config.execution.batches_per_task if engine.name != "local" else None
    for spec in config.variants:
        todo = intact_or_todo(jobs[spec.name], say)
        if not todo:
            continue
        if engine.name == "local":
            tasks.append(CaptureTask(config, spec.name, str(root), dict.fromkeys(todo)))
            continue
        for ps in todo:
            if per_task is None:
                tasks.append(CaptureTask(config, spec.name, str(root), {ps: None}))
                continue
            job = jobs[spec.name][ps]
            finished = job.prepare()
            left = [b for b in range(job.n_batches) if b not in finished]
            tasks += [CaptureTask(config, spec.name, str(root), {ps: part}) for part in chunks(left, per_task)]
    return tasks


def finish_capture(store: RunStore, job: CaptureJob, variant: str, prompt_set: str, record: dict[str, Any]) -> None:
    """Mark a capture complete and index it, once every one of its batches is verified against its marker (a
    record is written only here, by the driver; a piece of work split over tasks is finished by its last)."""
    if job.is_complete() or len(job.markers()) < job.n_batches:
        return  # done already, or other tasks of this capture are still to report
    damaged = job.damaged_batches()
    if damaged:
        job.forget(list(damaged))
        raise LayerdriftError(
            f"capture '{job.label}' in {str(job.root)!r} has {batch_list(list(damaged))} that did not verify after "
            f"capture ({next(iter(damaged.values()))}); run `layerdrift run` again with the same config and --out to "
            "recapture them."
        )
    store.manifest["variants"][variant] = record["variant_info"]
    store.record_capture(variant, prompt_set, job.mark_complete(record))


def engine_or_config(engine: Engine | None, config: ExperimentConfig):
    """The engine given, or the one the config's ``execution`` asks for (opened and closed here)."""
    if engine is not None:
        return nullcontext(engine)
    return engine_for(config)


def engine_for(config: ExperimentConfig):
    """Open the execution engine of a config (``[execution]``) for the length of a ``with`` block."""
    ex = config.execution
    return open_engine(ex.engine, ex.address, ex.cpus_per_task, ex.gpus_per_variant, ex.max_retries, ex.num_cpus)


def checked_inputs(config: ExperimentConfig) -> tuple[dict[str, Vocabulary], dict[str, list[str]]]:
    """Each prompt set's vocabulary and rendered prompts, once every input is known good (nothing written yet)."""
    if config.series and not config.series_variants():
        raise LayerdriftError(
            f"config '{config.name}' has checkpoint series that are not expanded into variants; "
            "pass it through layerdrift.training.series.expand_series before extracting."
        )
    vocabularies, prompts = prompt_sets(config)
    for p in config.capture.positions:
        parse_position(p)
    for spec in config.variants:  # every source must exist before anything is written
        resolve_source(spec)
    return vocabularies, prompts


def prompt_sets(config: ExperimentConfig) -> tuple[dict[str, Vocabulary], dict[str, list[str]]]:
    """Each prompt set's vocabulary and its rendered prompts."""
    sets = config.captured_prompt_sets()
    vocabularies = {ps.name: load_vocabulary(ps.vocabulary) for ps in sets}
    return vocabularies, {ps.name: render_prompts(vocabularies[ps.name], ps.template) for ps in sets}


@dataclass
class _StoreOnFirstUse:
    """The run store, created (or updated, dropping captures of variants no longer in the config) on first use."""

    root: RunPath
    config: ExperimentConfig
    vocabularies: dict[str, Vocabulary]
    store: RunStore | None = None

    def get(self) -> RunStore:
        if self.store is None:
            self.store = RunStore.create_or_update(self.root, manifest_base(self.config, self.vocabularies))
            names = {s.name for s in self.config.variants}
            captures = self.store.manifest["captures"]
            self.store.manifest["captures"] = {k: v for k, v in captures.items() if k.split("/")[0] in names}
        return self.store
