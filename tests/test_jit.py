"""UMAP's compiled functions (and layerdrift's distance kernel) cached on disk: a second process loads them
instead of compiling, same numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

FIT = """
import json, sys
import numpy as np
from numba.core import event
from numba.core.dispatcher import Dispatcher
from layerdrift.analyses.projection import joint_umap
from layerdrift.core.jit import UMAP_MODULES, cache_compiled_umap
import importlib
folder = cache_compiled_umap()
rng = np.random.default_rng(0)
xs = [rng.normal(size=(40, 8)) for _ in range(2)]
with event.install_recorder("numba:compile") as compiled:  # every function compiled, cached or not
    xy = joint_umap(xs, seed=0)
hits = misses = 0
for name in UMAP_MODULES:
    for f in vars(importlib.import_module(name)).values():
        if isinstance(f, Dispatcher) and f._can_compile:  # not those compiled at import from given signatures
            hits += sum(f.stats.cache_hits.values())
            misses += sum(f.stats.cache_misses.values())
out = {"folder": str(folder), "hits": hits, "misses": misses, "compiled": len(compiled.buffer), "xy": xy.tolist()}
print(json.dumps(out))
"""


def fit_in_a_new_process(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_umap_from_the_cache():
    """Two new processes on layerdrift's cache folder (warmed by ``make setup``; the first compiles whatever is
    missing there): the second compiles nothing and gives the same map."""
    import os

    from layerdrift.core.jit import cache_compiled_umap

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    first = fit_in_a_new_process(env)
    assert first["folder"] == str(cache_compiled_umap())
    assert any(cache_compiled_umap().rglob("*.nbi"))
    second = fit_in_a_new_process(env)
    assert second["misses"] == 0 and second["hits"] > 0  # all loaded from the cache
    assert second["compiled"] == 0, "a compiled function outside the cache"  # nothing compiled at all
    np.testing.assert_array_equal(np.array(second["xy"]), np.array(first["xy"]))  # the same numbers
