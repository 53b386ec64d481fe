"""Capture cost vs a plain Hugging Face forward, and peak memory vs data-set size.

Baseline: ``model(**batch, output_hidden_states=True)`` on the same HF model object, the same
padded batches, timed side by side (interleaved, median of repeats). Memory: peak RSS of a fresh
``layerdrift extract`` process for 235 vs 2350 prompts (streaming keeps it flat).

    python benchmarks/capture.py [--repeats 5] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from layerdrift.concepts.vocabulary import load_vocabulary, render_prompts
from layerdrift.core.naming import residual_hook_names
from layerdrift.hooks.capture import capture_batch
from layerdrift.hooks.prompts import encode_prompt, pad_batch, pad_id
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.loading import load_variant


def time_capture(repeats: int, batch_size: int) -> dict:
    loaded = load_variant(VariantSpec(name="reference", source="smollm2-135m-instruct"))
    vocab = load_vocabulary("embeddingdrift-235")
    encoded = [encode_prompt(loaded.tokenizer, p) for p in render_prompts(vocab, "The concept of {term} is")]
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        ids, mask, shifts = pad_batch(chunk, pad_id(loaded.tokenizer))
        index = torch.tensor([[len(e.ids) - 1 + s] for e, s in zip(chunk, shifts)])
        batches.append((ids, mask, index))
    hooks = residual_hook_names(loaded.n_layers)
    hf = loaded.bridge.original_model

    def run_layerdrift():
        for ids, mask, index in batches:
            capture_batch(loaded.bridge, ids, mask, hooks, index, torch.ones_like(index, dtype=torch.bool))

    @torch.no_grad()
    def run_hf():
        for ids, mask, index in batches:
            out = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            rows = torch.arange(ids.shape[0])
            [h[rows, index[:, 0]].float().numpy() for h in out.hidden_states]

    run_layerdrift(), run_hf()  # warm-up
    ours, base = [], []
    for _ in range(repeats):
        for fn, sink in ((run_layerdrift, ours), (run_hf, base)):
            t = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t)
    return {
        "layerdrift_s": statistics.median(ours),
        "hf_s": statistics.median(base),
        "ratio": statistics.median(ours) / statistics.median(base),
    }


def peak_rss_of_extract(n_prompts: int, folder: Path) -> float:
    """Peak RSS (MiB) of a fresh process extracting the reference variant for n prompts."""
    vocab = load_vocabulary("embeddingdrift-235")
    rows = ["term\tcategory"]
    for k in range(n_prompts):
        rows.append(f"{vocab.terms[k % 235]} {k // 235}\t{vocab.categories[k % 235]}")
    (folder / f"v{n_prompts}.tsv").write_text("\n".join(rows) + "\n")
    (folder / f"c{n_prompts}.toml").write_text(
        f'name = "mem{n_prompts}"\nout = "{folder / f"run{n_prompts}"}"\n'
        '[[variants]]\nname = "reference"\nsource = "smollm2-135m-instruct"\n'
        f'[[prompt_sets]]\nname = "c"\nvocabulary = "{folder / f"v{n_prompts}.tsv"}"\n[capture]\nbatch_size = 32\n'
    )
    code = (
        "import resource, sys\nfrom layerdrift.workbench.cli import main\n"
        f"rc = main(['extract', '--config', {str(folder / f'c{n_prompts}.toml')!r}, '--quiet'])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\nsys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from layerdrift.workbench.store.runstore import RunStore

    captured = RunStore.open(folder / f"run{n_prompts}").layer("reference", "c", -1).shape[0]
    assert captured == n_prompts, f"expected {n_prompts} captured prompts, found {captured}"
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    timing = time_capture(args.repeats, args.batch_size)
    print(f"capture of all {32} residual points, 235 prompts, batch {args.batch_size}, median of {args.repeats}:")
    print(f"  layerdrift (TransformerBridge + hooks): {timing['layerdrift_s']:.3f} s")
    print(f"  baseline HF forward, output_hidden_states=True: {timing['hf_s']:.3f} s")
    print(f"  ratio: {timing['ratio']:.3f}  (target <= 1.10)")
    with tempfile.TemporaryDirectory() as tmp:
        small = peak_rss_of_extract(235, Path(tmp))
        large = peak_rss_of_extract(2350, Path(tmp))
    print("peak RSS of `layerdrift extract` (reference variant only, fresh process):")
    print(
        f"  235 prompts: {small:.0f} MiB; 2350 prompts: {large:.0f} MiB; growth {large / small:.3f}x  (target < 1.5x)"
    )
    print(json.dumps({**timing, "rss_235_mib": small, "rss_2350_mib": large, "rss_growth": large / small}))


if __name__ == "__main__":
    main()
