"""Loader for stored behaviour vectors: an .npz with keys ``MODEL/BEHAVIOUR`` -> (layers, d) arrays.

This is the layout of the shared reference ``caa-llama2-7b-base-vs-chat.npz`` (Llama-2-7b and
-chat, 8 behaviours, 32 layers, float16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerdrift.errors import LayerdriftError


def load_behaviour_vectors(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """{model: {behaviour: (layers, d) float64}} from an .npz of ``MODEL/BEHAVIOUR`` arrays (no pickle)."""
    p = Path(path)
    if not p.is_file():
        raise LayerdriftError(f"behaviour-vector file {str(p)!r} does not exist; check the path.")
    try:
        data = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise LayerdriftError(f"{str(p)!r} is not a readable .npz file ({err}).") from None
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in data.files:
        model, sep, behaviour = key.rpartition("/")
        if not sep or not model or not behaviour:
            raise LayerdriftError(f"{str(p)!r}: key {key!r} is not of the form MODEL/BEHAVIOUR.")
        arr = data[key]
        if arr.ndim != 2:
            raise LayerdriftError(f"{str(p)!r}: {key!r} has shape {arr.shape}, expected (layers, d).")
        out.setdefault(model, {})[behaviour] = arr.astype(np.float64)
    return out
