"""Capture cost vs a bare Hugging Face forward, and memory.

Baseline: a separately loaded, unhooked ``AutoModelForCausalLM`` with its default attention (``sdpa``), the same
dtype and device, ``model(**batch, output_hidden_states=True)`` on the same padded batches, timed side by side
(interleaved, median of repeats). layerdrift runs as a variant is loaded for a run (``attn_implementation =
"auto"``: fused sdpa on CUDA, eager on the CPU).

Memory on CUDA: peak GPU memory while capturing one variant vs the model's own weights, and the memory left
after the variant is freed vs before it was loaded. On the CPU: peak RSS of a fresh ``layerdrift extract``
process for 235 vs 2350 prompts (streaming keeps it flat).

    python benchmarks/capture.py [--repeats 5] [--batch-size 32] [--device auto] [--source smollm2-135m-instruct]
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
from layerdrift.workbench.models.loading import _weights_folder, free, load_variant, resolve_source


def bare_hf_model(spec: VariantSpec, device: str, dtype: torch.dtype):
    """The same weights as a plain Hugging Face model, default attention, no bridge and no hooks."""
    from transformers import AutoModelForCausalLM

    folder, _ = _weights_folder(resolve_source(spec))
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gpu_memory(spec: VariantSpec, batches: list, hooks: list[str]) -> dict:
    """Peak GPU memory of capturing one variant vs its weights; memory after freeing it vs before loading it."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    loaded = load_variant(spec)
    weights = sum(p.numel() * p.element_size() for p in loaded.bridge.original_model.parameters())
    for ids, mask, index in batches:
        capture_batch(loaded.bridge, ids.cuda(), mask.cuda(), hooks, index, torch.ones_like(index, dtype=torch.bool))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    free(loaded)
    del loaded
    torch.cuda.synchronize()
    left = torch.cuda.memory_allocated() - before
    return {"weights_mib": weights / 2**20, "peak_mib": peak / 2**20, "left_after_free_bytes": left}


def time_capture(repeats: int, batch_size: int, source: str, device: str) -> dict:
    spec = VariantSpec(name="reference", source=source, device=device)
    loaded = load_variant(spec)
    vocab = load_vocabulary("embeddingdrift-235")
    encoded = [encode_prompt(loaded.tokenizer, p) for p in render_prompts(vocab, "The concept of {term} is")]
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        ids, mask, shifts = pad_batch(chunk, pad_id(loaded.tokenizer))
        index = torch.tensor([[len(e.ids) - 1 + s] for e, s in zip(chunk, shifts)])
        batches.append((ids, mask, index))
    hooks = residual_hook_names(loaded.n_layers)
    hf = bare_hf_model(spec, loaded.device, loaded.dtype)
    on = loaded.device

    def run_layerdrift():
        for ids, mask, index in batches:
            every = torch.ones_like(index, dtype=torch.bool)
            capture_batch(loaded.bridge, ids.to(on), mask.to(on), hooks, index, every)
        sync(on)

    @torch.no_grad()
    def run_hf():
        for ids, mask, index in batches:
            out = hf(input_ids=ids.to(on), attention_mask=mask.to(on), output_hidden_states=True)
            rows = torch.arange(ids.shape[0], device=on)
            [h[rows, index[:, 0].to(on)].float().cpu().numpy() for h in out.hidden_states]
        sync(on)

    run_layerdrift(), run_hf()  # warm-up
    ours, base = [], []
    for _ in range(repeats):
        for fn, sink in ((run_layerdrift, ours), (run_hf, base)):
            t = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t)
    info = {"device": on, "dtype": str(loaded.dtype), "attention": loaded.info["attn_implementation"]}
    free(loaded)
    result = {
        **info,
        "layerdrift_s": statistics.median(ours),
        "hf_s": statistics.median(base),
        "ratio": statistics.median(ours) / statistics.median(base),
    }
    if on.startswith("cuda"):
        result.update(gpu_memory(spec, batches, hooks))
    return result


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
    parser.add_argument("--device", default="auto", help="auto: cuda when there is one")
    parser.add_argument("--source", default="smollm2-135m-instruct", help="the model (an alias, hub id or folder)")
    args = parser.parse_args()
    timing = time_capture(args.repeats, args.batch_size, args.source, args.device)
    print(
        f"capture of every residual point of {args.source}, 235 prompts, batch {args.batch_size}, median of "
        f"{args.repeats}, on {timing['device']} in {timing['dtype']}:"
    )
    print(f"  layerdrift (TransformerBridge + hooks, {timing['attention']} attention): {timing['layerdrift_s']:.3f} s")
    print(f"  baseline: bare HF forward, default attention, output_hidden_states=True: {timing['hf_s']:.3f} s")
    print(f"  ratio: {timing['ratio']:.3f}  (target <= 1.05 on a GPU)")
    if "peak_mib" in timing:
        print(
            f"  GPU memory: weights {timing['weights_mib']:.0f} MiB, peak while capturing {timing['peak_mib']:.0f} MiB "
            f"({timing['peak_mib'] / timing['weights_mib']:.2f}x); left after freeing: "
            f"{timing['left_after_free_bytes']} bytes"
        )
        print(json.dumps(timing))
        return
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
