"""Checkpoint series: a fine-tune run here, a folder of checkpoints, or a hub id with revisions, expanded into ordered
variants.

A series ``helpful`` becomes variants ``helpful.step0``, ``helpful.step1``, ... in training order;
``ExperimentConfig.series_variants()`` gives the order back to every analysis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from layerdrift.core.engine import Engine, LocalEngine
from layerdrift.errors import LayerdriftError
from layerdrift.training.finetune import finetune, series_checkpoints
from layerdrift.workbench.config import ExperimentConfig, FinetuneSpec, SeriesSpec, config_from_dict


def series_step(name: str) -> int:
    """The training step encoded in an expanded variant name (``helpful.step16`` -> 16)."""
    return int(name.rsplit(".step", 1)[1])


def _revision_step(revision: str, index: int) -> int:
    digits = re.findall(r"\d+", revision)
    return int(digits[-1]) if digits else index


def series_members(series: SeriesSpec, trained: Path | None = None) -> list[dict]:
    """Variant settings (name, source, revision) of every checkpoint of one series (``trained``: the checkpoint folder
    of the series' own fine-tune)."""
    if series.revisions is not None:
        steps = [_revision_step(r, i) for i, r in enumerate(series.revisions)]
        if len(set(steps)) != len(steps):
            steps = list(range(len(series.revisions)))
        members = [(s, series.source, r) for s, r in zip(steps, series.revisions)]
    else:
        folder = trained if trained is not None else Path(str(series.source)).expanduser()
        if not folder.is_dir():
            raise LayerdriftError(
                f"series '{series.name}': checkpoint folder {str(folder)!r} does not exist; point "
                "source at a folder of step-N or checkpoint-N subfolders."
            )
        members = [(s, str(path), None) for s, path in series_checkpoints(folder)]
    if series.steps is not None:
        have = {m[0] for m in members}
        missing = [s for s in series.steps if s not in have]
        if missing:
            raise LayerdriftError(
                f"series '{series.name}' asks for step {missing[0]}, which is not among its checkpoints {sorted(have)}."
            )
        members = [m for m in members if m[0] in set(series.steps)]
    if len(members) < 2:
        raise LayerdriftError(f"series '{series.name}' has {len(members)} checkpoint; a series needs at least 2.")
    return [
        {"name": f"{series.name}.step{s}", "source": src, "revision": rev, "chat_template": series.chat_template}
        for s, src, rev in members
    ]


def finetune_task(spec: FinetuneSpec, say: Callable[[str], None] | None = None) -> str:
    """One series' fine-tune (or its finished checkpoints, reused): the checkpoint folder; quiet without ``say``."""
    return str(finetune(spec, quiet=say is None, say=say))


def expand_series(
    config: ExperimentConfig,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
    engine: Engine | None = None,
) -> ExperimentConfig:
    """The config with every series' checkpoints appended as variants (idempotent). The series that fine-tune are
    trained first, one task each on ``engine`` (default: one after the other in this process)."""
    if not config.series or config.series_variants():
        return config
    engine = engine or LocalEngine()
    tuned = [s for s in config.series if s.finetune is not None]
    if tuned and say is not None:
        say(f"fine-tuning {len(tuned)} series on the {engine.name} engine")
    here = engine.name == "local" and not quiet  # progress is printed only in this process
    folders = engine.map(
        finetune_task, [s.finetune for s in tuned], say if here else None, engine.model_task, "a fine-tune"
    )
    trained = {s.name: Path(f) for s, f in zip(tuned, folders)}
    data = config.model_dump(mode="json", exclude_none=True)
    for series in config.series:
        data["variants"].extend(series_members(series, trained.get(series.name)))
    return config_from_dict(data, where="the config with its checkpoint series expanded")
