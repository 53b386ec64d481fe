"""Numba's on-disk cache for UMAP's compiled functions, under layerdrift's cache folder.

umap-learn and pynndescent compile a few hundred numba functions on first use, most without numba's
``cache=True``: every new process paid about 8 s of compilation on its first map (each ``layerdrift run``,
each Ray worker, each test process). ``cache_compiled_umap`` turns numba's on-disk cache on for every
compiled function of those modules, in ``$LAYERDRIFT_CACHE/numba`` (or ``$NUMBA_CACHE_DIR`` when set), so
only the first process anywhere compiles; ``make setup`` runs ``layerdrift warm-up`` once so that not
even the first run pays it. numba keys each cached function by its source file and signature and
recompiles when either changes; the numbers are the same with or without the cache. layerdrift's own compiled
functions for the maps are listed with them; they are module-level, as a compiled closure is never cached.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

UMAP_MODULES = (
    "umap.umap_",
    "umap.layouts",
    "umap.utils",
    "umap.distances",
    "umap.sparse",
    "umap.spectral",
    "pynndescent.pynndescent_",
    "pynndescent.distances",
    "pynndescent.sparse",
    "pynndescent.sparse_nndescent",
    "pynndescent.utils",
    "pynndescent.rp_trees",
    "pynndescent.graph_utils",
    "layerdrift.analyses.cosine_kernel",  # layerdrift's own distance loop for UMAP's exact neighbours
)


def cache_root() -> Path:
    """layerdrift's cache folder: ``$LAYERDRIFT_CACHE``, default ``~/.cache/layerdrift``."""
    return Path(os.environ.get("LAYERDRIFT_CACHE", Path.home() / ".cache" / "layerdrift"))


@functools.cache
def cache_compiled_umap() -> Path:
    """Turn numba's on-disk cache on for UMAP's compiled functions (once per process); returns the cache folder."""
    from numba.core import config
    from numba.core.dispatcher import Dispatcher

    if not config.CACHE_DIR:  # a user's NUMBA_CACHE_DIR wins
        config.CACHE_DIR = str(cache_root() / "numba")
    for name in UMAP_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a module of another umap-learn / pynndescent version
            continue
        for value in vars(module).values():
            if isinstance(value, Dispatcher):
                value.enable_caching()
    return Path(config.CACHE_DIR)
