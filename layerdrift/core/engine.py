"""Execution engines: where independent pieces of work run. ``local`` runs them in this process, in order;
``ray`` runs them as Ray tasks on a cluster (an existing one, or one started here for this run).

The one contract: ``engine.map(fn, items, shared=...)`` returns ``[fn(item, shared) for item in items]``,
results in item order whatever order the tasks finish in; ``each(i, result)`` is called in this process as
each one finishes (to record it at once, or to advance a progress bar). ``fn`` is a module-level function and every item
is plain data; a model object is never shipped (a task loads its own). ``shared`` is put in the object
store once and handed to every task. Failures come back as one ``LayerdriftError`` sentence: a task's own
``LayerdriftError`` as it was said, a worker that died more often than ``max_retries``, a task out of memory,
a cluster without the GPUs a task asks for, an address nothing answers on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from layerdrift.errors import LayerdriftError

T = TypeVar("T")
R = TypeVar("R")
ENGINES = ("local", "ray")
THREADS_ENV = "LAYERDRIFT_TORCH_THREADS"


@dataclass(frozen=True)
class Resources:
    """What one task asks the scheduler for."""

    cpus: float = 1.0
    gpus: float = 0.0


class Engine(Protocol):
    """Runs independent pieces of work; see the module docstring for the contract."""

    name: str
    model_task: Resources  # what a task that loads a model asks for
    where: str  # in words, for messages

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[T],
        shared: Any = None,
        resources: Resources | None = None,
        what: str = "a task",
        each: Callable[[int, R], None] | None = None,
    ) -> list[R]: ...

    def share(self, obj: Any) -> Any:
        """A handle to ``obj`` that ``map`` hands to every task without copying it again (put once on a cluster)."""
        ...


def call(fn: Callable[..., R], item: Any, shared: Any) -> R:
    return fn(item) if shared is None else fn(item, shared)


class LocalEngine:
    """Every piece in this process, one after the other (today's behaviour, and the default)."""

    name = "local"
    model_task = Resources()
    where = "this process"

    def share(self, obj: Any) -> Any:
        return obj

    def map(self, fn, items, shared=None, resources=None, what="a task", each=None):  # type: ignore[no-untyped-def]
        out = []
        for i, item in enumerate(items):
            out.append(call(fn, item, shared))
            if each is not None:
                each(i, out[-1])
        return out


def driver_threads() -> tuple[int, int]:
    """This process's torch and BLAS thread counts (``LAYERDRIFT_TORCH_THREADS`` overrides torch's)."""
    import torch
    from threadpoolctl import threadpool_info

    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return int(os.environ.get(THREADS_ENV, torch.get_num_threads())), max(blas, default=1)


def _in_worker(fn: Callable[..., R], item: Any, shared: Any, threads: tuple[int, int]) -> R:
    """A task's body on a Ray worker: torch and BLAS use the driver's thread counts, so every reduction is split
    the same way and the numbers are the local engine's to the last bit."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads[0])
    with threadpool_limits(limits=threads[1], user_api="blas"):
        return call(fn, item, shared)


@dataclass
class RayEngine:
    """Ray tasks, one per item, each with ``resources`` and retried ``max_retries`` times when its worker dies."""

    default: Resources
    model_task: Resources
    max_retries: int
    address: str | None
    name: str = "ray"

    def share(self, obj: Any) -> Any:
        import ray

        return ray.put(obj)

    def map(self, fn, items, shared=None, resources=None, what="a task", each=None):  # type: ignore[no-untyped-def]
        import ray

        items = list(items)
        if not items:
            return []
        res = resources or self.default
        self.check_fits(res, what)
        remote = ray.remote(_in_worker).options(
            num_cpus=res.cpus, num_gpus=res.gpus, max_retries=self.max_retries, name=fn.__name__
        )
        shared_ref = shared if shared is None or isinstance(shared, ray.ObjectRef) else ray.put(shared)
        threads = driver_threads()
        pending = {remote.remote(fn, item, shared_ref, threads): i for i, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                results[i] = self._result(ready[0], what, items[i])
                if each is not None:
                    each(i, results[i])
        except BaseException:
            for ref in pending:  # nothing of this run may go on writing once the driver has given up
                ray.cancel(ref, force=True)
            raise
        return results

    def check_fits(self, res: Resources, what: str) -> None:
        """Refuse a task no node can ever run (Ray would keep it pending forever)."""
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        for kind, asked, fix in (
            ("GPU", res.gpus, "lower execution.gpus_per_variant or add GPU nodes"),
            (
                "CPU",
                res.cpus,
                "lower execution.cpus_per_task (a CPU-only model task asks for the driver's torch "
                "threads too, LAYERDRIFT_TORCH_THREADS) or add bigger nodes",
            ),
        ):
            have = max((n.get(kind, 0) for n in nodes), default=0)
            if asked > have:
                raise LayerdriftError(
                    f"{what} asks for {asked:g} {kind}(s), but no node of the Ray cluster at {self.where} has that "
                    f"many (the most on one node: {have:g}); {fix}."
                )

    @property
    def where(self) -> str:
        return self.address or "a local cluster started by this run"

    def _result(self, ref: Any, what: str, item: Any) -> Any:
        """A task's value, or its failure as one sentence."""
        import ray
        from ray import exceptions as rex

        try:
            return ray.get(ref)
        except rex.RayTaskError as err:
            cause = err.cause
            if isinstance(cause, LayerdriftError):
                raise LayerdriftError(str(cause)) from None
            raise cause from None
        except rex.OutOfMemoryError:
            raise LayerdriftError(
                f"{what} ({item_text(item)}) ran out of memory on its Ray worker and was stopped; give tasks more "
                "memory (execution.cpus_per_task spreads them out, or smaller capture.batch_size), then run again "
                "(finished work is kept)."
            ) from None
        except (rex.WorkerCrashedError, rex.NodeDiedError, rex.TaskUnschedulableError) as err:
            raise LayerdriftError(
                f"{what} ({item_text(item)}) failed on the Ray cluster at {self.where}: its worker died "
                f"{self.max_retries + 1} time(s) ({type(err).__name__}); check the workers' logs, then run again "
                "(finished work is kept)."
            ) from None


def item_text(item: Any) -> str:
    """A short name for a piece of work in an error sentence."""
    return str(getattr(item, "label", item))[:120]


def connect_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to the Ray cluster at ``address`` (``"auto"``, ``"ray://host:port"``, ``"host:port"``) or start a
    local one; returns True when this call started it (so the caller shuts it down)."""
    try:
        import ray
    except ImportError:
        raise LayerdriftError(
            "execution.engine = 'ray' needs Ray, which is not installed; `pip install layerdrift[ray]` "
            "(or use engine 'local')."
        ) from None
    if ray.is_initialized():
        return False
    if address and address != "auto":
        check_reachable(address)
    env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith("LAYERDRIFT_")}}
    try:
        if address:
            ray.init(address=address, runtime_env=env, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(
                num_cpus=num_cpus, runtime_env=env, logging_level="ERROR", log_to_driver=False, include_dashboard=False
            )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise LayerdriftError(
            f"could not connect to the Ray cluster at {address!r} ({str(err).splitlines()[0][:160]}); check "
            "execution.address (or --address), or leave it empty to start a local cluster."
        ) from None
    return not address


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an address nothing answers on (Ray itself would retry for minutes)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise LayerdriftError(
            f"Ray address {address!r} is not 'auto', 'host:port' or 'ray://host:port'; check execution.address "
            "(or --address)."
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise LayerdriftError(
            f"nothing answers at the Ray address {address!r} ({err.strerror or type(err).__name__}); start the "
            "cluster (`ray start --head`) or fix execution.address (or --address), or leave it empty to start a "
            "local cluster."
        ) from None


@contextmanager
def open_engine(
    kind: str = "local",
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    max_retries: int = 3,
    num_cpus: int | None = None,
) -> Iterator[Engine]:
    """The engine a run uses, for the length of the block (a Ray cluster this block started is shut down)."""
    if kind == "local":
        yield LocalEngine()
        return
    if kind != "ray":
        raise LayerdriftError(f"execution engine {kind!r} is not one of {', '.join(ENGINES)}.")
    started = connect_ray(address, num_cpus)
    # a model on the CPU computes with the driver's torch threads (so its numbers are the local ones): it asks for them
    model_cpus = cpus_per_task if gpus_per_task > 0 else max(cpus_per_task, driver_threads()[0])
    try:
        yield RayEngine(Resources(cpus_per_task), Resources(model_cpus, gpus_per_task), max_retries, address)
    finally:
        if started:
            import ray

            ray.shutdown()


def chunks(items: Iterable[T], size: int) -> list[list[T]]:
    """``items`` in consecutive runs of at most ``size``."""
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]
