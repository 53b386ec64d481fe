"""Patch sweep cost: batched cells (layerdrift) vs one forward per (block, position, prompt) cell.

Both patch the same source activations (SmolLM2 NF4's block outputs, captured at every token)
into the SmolLM2 reference over the same flip-probe prompts, blocks and positions, reading the
same logits; the baseline runs each cell as its own unpadded forward with full logits, the way a
notebook loop over a TransformerLens hook does. Timed side by side; prints the ratio and the
largest difference between the two results.

    python benchmarks/patching.py [--prompts 12] [--blocks 0,10,20,29]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from layerdrift.concepts.patch_prompts import load_patch_prompts
from layerdrift.hooks.interventions import ALL_POSITIONS, component_hook, patch_sweep
from layerdrift.hooks.prompts import pad_id
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.loading import free, load_variant


def capture_every_token(loaded, seqs: list[list[int]], hooks: list[str]) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
    for s in seqs:
        grabbed = {}

        def grabber(name, grabbed=grabbed):
            def grab(act, hook=None):
                grabbed[name] = act[0].detach().float().numpy()

            return grab

        with loaded.bridge.hooks(fwd_hooks=[(h, grabber(h)) for h in hooks]), torch.no_grad():
            loaded.bridge(torch.tensor([s]), return_type=None)
        for h in hooks:
            out[h].append(grabbed[h])
    return out


@torch.no_grad()
def per_cell_loop(loaded, seqs, hooks, sources, offsets, read_ids) -> np.ndarray:
    """The obvious version: one forward per cell, full logits, no batching."""
    out = np.full((len(hooks), len(offsets), len(seqs), read_ids.shape[1]), np.nan)
    for h, hook in enumerate(hooks):
        for o, off in enumerate(offsets):
            for i, s in enumerate(seqs):
                src = torch.as_tensor(sources[hook][i])

                def patch(act, hook=None, off=off, src=src, n=len(s)):  # noqa: B008 - binds this loop's length
                    act = act.clone()
                    if off == ALL_POSITIONS:
                        act[0] = src
                    else:
                        act[0, n + off] = src[n + off]
                    return act

                with loaded.bridge.hooks(fwd_hooks=[(hook, patch)]):
                    logits = loaded.bridge(torch.tensor([s]), return_type="logits")[0, -1]
                out[h, o, i] = logits[torch.as_tensor(read_ids[i])].numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--blocks", default="0,10,20,29")
    args = parser.parse_args()
    blocks = [int(b) for b in args.blocks.split(",")]
    hooks = [component_hook("resid", b) for b in blocks]
    offsets = [-1, -2, -3, ALL_POSITIONS]
    _, rows = load_patch_prompts("flip-probes")
    source = load_variant(VariantSpec(name="nf4", source="smollm2-135m-instruct", quantization="nf4"))
    seqs = [source.tokenizer(r.prompt)["input_ids"] for r in rows[: args.prompts]]
    read_ids = np.stack(
        [
            [source.tokenizer(r.target)["input_ids"][0], source.tokenizer(" the")["input_ids"][0]]
            for r in rows[: args.prompts]
        ]
    )
    sources = capture_every_token(source, seqs, hooks)
    free(source)
    receiver = load_variant(VariantSpec(name="reference", source="smollm2-135m-instruct"))
    pid = pad_id(receiver.tokenizer)
    patch_sweep(receiver.bridge, seqs[:2], pid, hooks[:1], sources, [-1], read_ids[:2])  # warm-up
    t0 = time.perf_counter()
    batched, _, _ = patch_sweep(receiver.bridge, seqs, pid, hooks, sources, offsets, read_ids, batch_size=32)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = per_cell_loop(receiver, seqs, hooks, sources, offsets, read_ids)
    t_loop = time.perf_counter() - t0
    cells = len(hooks) * len(offsets) * len(seqs)
    print(
        json.dumps(
            {
                "cells": cells,
                "blocks": blocks,
                "offsets": ["all" if o == ALL_POSITIONS else o for o in offsets],
                "prompts": len(seqs),
                "batched_s": round(t_batched, 2),
                "per_cell_loop_s": round(t_loop, 2),
                "ratio_loop_over_batched": round(t_loop / t_batched, 2),
                "max_abs_logit_difference": float(np.nanmax(np.abs(batched - loop))),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
