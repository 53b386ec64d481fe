"""Captured activations as a labelled, lazy array: an ``xarray.DataArray`` over dask, one chunk per hook point.

Dimensions ``prompt`` x ``point`` x ``d_model`` (``prompt`` x ``point`` x ``token`` x ``d_model`` for
``position = "all"``), with coordinates:

- ``prompt``: the prompt's row (0..n-1), with ``term``, ``category`` and ``text`` along it;
- ``point``: the TransformerLens hook name (``blocks.20.hook_resid_post``), with ``label`` along it (``embed``,
  ``20``, ``final``), in depth order;
- ``d_model``: 0..d-1 (``token``: 0..max_len-1).

Nothing is read until values are asked for, and then only the chunks of the points selected: each point is one
``RunStore.activations`` read (every batch checked against its checksum, as any read of the store), so
``acts.sel(point="blocks.20.hook_resid_post").values`` reads that one array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from layerdrift.core.naming import point_label
from layerdrift.errors import LayerdriftError

if TYPE_CHECKING:
    import xarray as xr

    from layerdrift.workbench.store.runstore import RunStore


def activation_array(
    store: RunStore,
    variant: str,
    prompt_set: str | None = None,
    position: str = "last",
    points: Sequence[str] | None = None,
) -> xr.DataArray:
    """One variant's captured activations of a prompt set (default: the first) at ``points`` (default: every
    residual point, in depth order), labelled and lazy (see the module docstring)."""
    import dask
    import dask.array as da
    import xarray as xr

    ps = prompt_set or store.prompt_sets[0]
    info = prompt_set_info(store, ps)
    entry = store.capture(variant, ps)
    hooks = list(points) if points is not None else store.residual_points(variant, ps)
    inner = (int(entry["max_len"]),) if position == "all" else ()
    shape = (int(entry["n_prompts"]), *inner, int(store.manifest["variants"][variant]["d_model"]))
    read = dask.delayed(store.activations, pure=True)
    parts = [da.from_delayed(read(variant, ps, hook, position), shape=shape, dtype=np.float32) for hook in hooks]
    dims = ("prompt", "point", *(("token",) if inner else ()), "d_model")
    coords = {
        "prompt": np.arange(shape[0]),
        "term": ("prompt", info["terms"]),
        "category": ("prompt", info["categories"]),
        "text": ("prompt", store.tokenization(variant, ps)["texts"]),
        "point": hooks,
        "label": ("point", [point_label(h) for h in hooks]),
        "d_model": np.arange(shape[-1]),
        **({"token": np.arange(inner[0])} if inner else {}),
    }
    attrs = {"variant": variant, "prompt_set": ps, "position": position, "run": str(store.root)}
    return xr.DataArray(da.stack(parts, axis=1), dims=dims, coords=coords, attrs=attrs, name="activations")


def prompt_set_info(store: RunStore, prompt_set: str) -> dict[str, list[str]]:
    """A config prompt set's terms and categories, or one sentence saying which prompt sets there are."""
    info = store.manifest.get("prompt_sets", {}).get(prompt_set)
    if info is None:
        raise LayerdriftError(
            f"run {str(store.root)!r} has no prompt set {prompt_set!r}; its prompt sets: "
            f"{', '.join(store.prompt_sets)}."
        )
    return info
