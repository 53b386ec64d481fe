"""The run context: the shared mechanics every experiment runner uses, owned once.

Models are loaded one at a time and only when something is not cached (``ctx.model``); token sequences
are captured into the run store with their manifest record (``ctx.capture_sequences``); a variant's
identity for cache keys is ``ctx.identity``; progress goes to ``ctx.say`` and ``ctx.progress``; and
``ctx.results`` runs an experiment or reuses its result set under the runner's fingerprint. The engine
that runs independent pieces of work is ``ctx.map`` (in-process today).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from layerdrift.core.engine import Engine, LocalEngine
from layerdrift.core.hashing import fingerprint
from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.experiments.protocol import Experiment
from layerdrift.workbench.models.identity import variant_identity
from layerdrift.workbench.models.loading import LazyVariant, LoadedVariant
from layerdrift.workbench.store.extract import ensure_sequence_capture
from layerdrift.workbench.store.results import ResultSet, cached_result_set, save_result_set
from layerdrift.workbench.store.runstore import RunStore

T = TypeVar("T")
R = TypeVar("R")


def _silent(message: str) -> None:
    return None


@dataclass(frozen=True)
class Piece:
    """One call of a runner's method, as plain data a worker anywhere can run: which experiment, which method,
    its arguments, and the config and run folder the worker rebuilds the runner from."""

    experiment: str
    method: str
    args: tuple[Any, ...]
    config: ExperimentConfig
    root: str

    @property
    def label(self) -> str:
        return f"{self.experiment} {self.method}({', '.join(map(repr, self.args))})"


def run_piece(piece: Piece) -> Any:
    """A piece of an experiment on a worker: the runner rebuilt on the run folder (whose manifest the worker never
    writes: its captures are indexed by the driver from their own records), then the one method called."""
    from layerdrift.workbench.experiments.registry import experiment_named

    store = RunStore.open(piece.root)
    store.read_only = True
    runner = experiment_named(piece.experiment).runner(RunContext(piece.config, store))
    return getattr(runner, piece.method)(*piece.args)


@dataclass
class RunContext:
    """Everything a runner needs besides its own settings: the config, the store, models, progress, the engine."""

    config: ExperimentConfig
    store: RunStore
    progress: Any = None  # a rich Progress, or None when quiet
    say: Callable[[str], None] = _silent
    engine: Engine = field(default_factory=LocalEngine)
    before_computing: Callable[[], None] = lambda: None  # called before an experiment computes (not cached)
    _identities: dict[str, str] = field(default_factory=dict, repr=False)

    def identity(self, variant: str) -> str:
        """Fingerprint of everything about a variant that changes its activations (weights, loading, device, dtype)."""
        if variant not in self._identities:
            self._identities[variant] = fingerprint(variant_identity(self.config, self.config.variant(variant)))
        return self._identities[variant]

    @contextmanager
    def model(self, variant: str) -> Iterator[Callable[[], LoadedVariant]]:
        """A variant loaded on first call inside the block, and freed when the block ends (one model at a time)."""
        lazy = LazyVariant(self.config.variant(variant), self.config.device, self.config.dtype)
        try:
            yield lazy
        finally:
            lazy.release()

    def capture_sequences(self, variant: str, prompt_set: str, key: str, **capture: Any) -> None:
        """Capture token sequences into the store as ``captures/VARIANT/PROMPT_SET`` (skipped when intact)."""
        ensure_sequence_capture(self.store, variant, prompt_set, key, progress=self.progress, **capture)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """A progress bar; returns ``advance(n)``."""
        if self.progress is None:
            return lambda n=1: None
        task = self.progress.add_task(description, total=total)
        return lambda n=1: self.progress.update(task, advance=n)

    def map(
        self,
        fn: Callable[..., R],
        items: Iterable[T],
        shared: Any = None,
        what: str = "a task",
        each: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        """``[fn(item, shared) for item in items]`` on the run's engine, results in item order; ``fn`` is a
        module-level function of plain data, ``shared`` (e.g. the stacked activations) is shipped once, and
        ``each(i, result)`` is called here as each finishes."""
        return self.engine.map(fn, list(items), shared, None, what, each)

    def pieces(
        self, runner: Any, method: str, items: Iterable[tuple[Any, ...]], loads_model: bool = False
    ) -> list[Any]:
        """``[runner.method(*args) for args in items]`` on the run's engine, results in item order. In this process
        the runner itself is called (its progress bars draw); on a cluster each call is a task (asking for the GPUs
        of a model when ``loads_model``) and the captures the tasks finished are indexed into the manifest here."""
        from layerdrift.workbench.experiments.registry import experiment_of

        items = [tuple(args) for args in items]
        if self.engine.name == "local":
            return [getattr(runner, method)(*args) for args in items]
        name = experiment_of(runner).name
        jobs = [Piece(name, method, args, self.config, str(self.store.root)) for args in items]
        resources = self.engine.model_task if loads_model else None
        try:
            return self.engine.map(run_piece, jobs, None, resources, f"{name} work")
        finally:
            self.store.reindex_captures()
            self.store.save()

    def results(self, experiment: Experiment) -> ResultSet:
        """The experiment's result set: reused when saved under the same fingerprint and intact, else computed and
        saved at once."""
        runner = experiment.runner(self)
        key = f"{experiment.version}:{runner.key}"
        cached = cached_result_set(self.store.root, experiment.name, key)
        if cached is not None and set(experiment.tables) <= set(cached.tables):
            return cached
        self.before_computing()
        out = runner.run()
        result = ResultSet(experiment.name, key, out.tables, out.meta, out.arrays)
        save_result_set(self.store.root, result)
        return result
