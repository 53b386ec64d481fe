"""Fixtures: tiny Llama models and a tokenizer built in-process (no downloads), and config helpers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub; unknown ids fail at once
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# analysis settings that keep a tiny run fast (few bootstrap draws, one UMAP, no PNGs); tests add to them
FAST_ANALYSIS = {"k": 3, "n_boot": 100, "n_perm": 100, "umap_layers": "headline", "umap_neighbors": 4, "png": False}

VOCAB_TEXT = """term\tcategory
love\tabstract
justice\tabstract
France\tfactual
Paris\tfactual
electron\tscientific
photosynthesis\tscientific
nurse\tdemographic
teenager\tdemographic
South Korea\tfactual
entropy\tscientific
"""

# Terms and categories that would run script or formulas if any view treated them as markup (tiny_run has them).
HOSTILE_ROWS = [
    ("<img src=x onerror=alert(1)>", "<svg onload=alert(2)>"),
    ("<script>alert(3)</script>", "<svg onload=alert(2)>"),
    ('=HYPERLINK("http://x","y")', "factual"),
    ("**bold** [link](javascript:alert(4))", "abstract"),
]


def build_tokenizer(folder: Path):
    """A byte-level BPE tokenizer trained on a few sentences, with BOS/EOS/PAD and offsets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [
        "The concept of love is",
        "The concept of justice is",
        "France Paris electron photosynthesis nurse teenager",
    ] * 20
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}assistant:"
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 3) -> Path:
    """A randomly initialised 3-layer Llama (d_model 32) saved as a Hugging Face folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(folder)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # make the final norm non-trivial so norm bugs show
        model.model.norm.weight.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def compiled_umap_from_the_cache():
    """UMAP's compiled functions from layerdrift's cache (warmed by ``make setup``), as every run loads them: a test
    that calls ``joint_umap`` first would otherwise compile them all (10 s)."""
    from layerdrift.core.jit import cache_compiled_umap

    cache_compiled_umap()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> Path:
    """Same architecture and tokenizer, other weights: a stand-in for a fine-tuned variant."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-b"), seed=1)


@pytest.fixture()
def vocab_file(tmp_path) -> Path:
    path = tmp_path / "vocab.tsv"
    path.write_text(VOCAB_TEXT, encoding="utf-8")
    return path


def config_dict(
    out: Path,
    variants: dict[str, Path | dict],
    vocab: Path | None = None,
    *,
    name: str = "tiny",
    capture: dict | None = None,
    analysis: dict | None = None,
    **sections,
) -> dict:
    """The tests' one config builder, as the dict a TOML file would hold.

    ``variants`` maps a name to a model folder or to a variant table (the first is the reference unless one says
    otherwise); ``vocab`` becomes the ``concepts`` prompt set; ``capture`` defaults to batches of 4 and ``analysis``
    is FAST_ANALYSIS with the given keys on top; other keyword arguments are further sections (``patching=...``).
    """
    rows = [
        {"name": key, **(spec if isinstance(spec, dict) else {"source": str(spec)})} for key, spec in variants.items()
    ]
    if not any("reference" in row for row in rows):
        rows[0]["reference"] = True
    config = {
        "name": name,
        "out": str(out),
        "variants": rows,
        "capture": {"batch_size": 4} if capture is None else capture,
        "analysis": {**FAST_ANALYSIS, **(analysis or {})},
        **sections,
    }
    if vocab is not None:
        config["prompt_sets"] = [{"name": "concepts", "vocabulary": str(vocab)}]
    return config


def make_config(*args, **kwargs):
    """`config_dict` validated into a Config."""
    from layerdrift.workbench.config import config_from_dict

    return config_from_dict(config_dict(*args, **kwargs))


def feature_cka(x, y):
    """Linear CKA in feature space, |Yc^T Xc|^2 / (|Xc^T Xc| |Yc^T Yc|) in Frobenius norms: no Gram involved."""
    import numpy as np

    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def floor_of(model: Path) -> dict:
    """A bfloat16 noise-floor variant of ``model``."""
    return {"source": str(model), "dtype": "bfloat16", "noise_floor": True}


def tiny_config(model: Path, vocab: Path, out: Path, **capture):
    """A capture-only config: the tiny model twice (``ref`` and ``copy``), batches of 3."""
    return make_config(out, {"ref": model, "copy": model}, vocab, capture={"batch_size": 3, **capture})


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tiny_model_b, tmp_path_factory):
    """A finished `layerdrift run` on the tiny models (projections at every layer, no PNGs, two templates)."""
    import json

    from layerdrift import run

    folder = tmp_path_factory.mktemp("tiny-vocab")
    vocab = folder / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT + "".join(f"{t}\t{c}\n" for t, c in HOSTILE_ROWS), encoding="utf-8")
    terms = [line.split("\t")[0] for line in VOCAB_TEXT.splitlines()[1:]]
    patch_terms = [HOSTILE_ROWS[0][0], *terms]  # a hostile prompt among the patched ones
    (folder / "patch.jsonl").write_text(
        "".join(
            json.dumps({"prompt": f"The concept of {t} is", "target": " love", "category": "c"}) + "\n"
            for t in patch_terms
        )
    )
    (folder / "behaviour.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "question": f"Is {t} good?\n (A) yes\n (B) no",
                    "answer_matching_behavior": "(A)" if i % 2 else "(B)",
                    "answer_not_matching_behavior": "(B)" if i % 2 else "(A)",
                }
            )
            + "\n"
            for i, t in enumerate(terms)
        )
    )
    cfg = make_config(
        tmp_path_factory.mktemp("tiny-run"),
        {"base": tiny_model, "tuned": tiny_model_b, "floor": floor_of(tiny_model)},
        name="tiny-dash",
        prompt_sets=[{"name": "concepts", "vocabulary": str(vocab), "templates": TINY_TEMPLATES}],
        capture={},
        analysis={"umap_layers": "all"},
        patching={
            "prompts": str(folder / "patch.jsonl"),
            "positions": 2,
            "select": "all",
            "max_prompts": 6,
            "components": ["resid", "attn"],
        },
        behaviour={"sets": [str(folder / "behaviour.jsonl")], "steering_items": 3, "steering_layers": [0, 2]},
        manifold={"sets": ["birthday"], "n_prompts": 40, "folds": 4},
        lens={"top_k": 3},
    )
    return run(cfg, quiet=True)


# tiny_run's template ensemble: the seed template and one whose text would be markup in HTML, Markdown and LaTeX
TINY_TEMPLATES = ["The concept of {term} is", "<b>{term}</b> & 100% of $x_1$ is"]


def derive_tiny_llama(source: Path, folder: Path, edit) -> Path:
    """Copy a tiny model folder, applying ``edit(model)`` to the weights (tokenizer unchanged)."""
    import shutil

    import torch
    from transformers import LlamaForCausalLM

    shutil.copytree(source, folder, dirs_exist_ok=True)
    model = LlamaForCausalLM.from_pretrained(source)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_tuned(tiny_model, tmp_path_factory) -> Path:
    """tiny_model with only its blocks changed (embedding, final norm and unembedding shared), like a block-wise
    fine-tune."""
    import torch

    def edit(model):
        gen = torch.Generator().manual_seed(7)
        for p in model.model.layers.parameters():
            p.add_(0.5 * p.std() * torch.randn(p.shape, generator=gen))

    return derive_tiny_llama(tiny_model, tmp_path_factory.mktemp("tiny-tuned"), edit)


PLANT_SEED = 11


def planted_direction(d_model: int = 32):
    import numpy as np

    v = np.random.default_rng(PLANT_SEED).normal(size=d_model)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="session")
def tiny_model_planted(tiny_model, tmp_path_factory) -> Path:
    """tiny_model whose letters 'A' and 'B' sit at +/- a planted unit direction (embedding and unembedding), blocks
    damped."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    direction = torch.tensor(planted_direction(), dtype=torch.float32)

    def edit(model):
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(0.1)
            layer.mlp.down_proj.weight.mul_(0.1)
        emb = model.model.embed_tokens.weight
        base = emb[[a, b]].mean(0)
        emb[a], emb[b] = base + direction, base - direction
        head = model.lm_head.weight
        head[a], head[b] = 3 * direction, -3 * direction

    return derive_tiny_llama(tiny_model, tmp_path_factory.mktemp("tiny-planted"), edit)


@pytest.fixture(scope="session")
def series_run(tiny_model, tmp_path_factory):
    """A run with a plain base variant and a LoRA fine-tune series of the tiny model (trained in the run)."""
    from layerdrift import run

    folder = tmp_path_factory.mktemp("series")
    (folder / "vocab.tsv").write_text(VOCAB_TEXT, encoding="utf-8")
    (folder / "memo.jsonl").write_text(
        "".join(
            json.dumps({"prompt": f"Tell me about {t}.", "response": f"{t} is a word."}) + "\n"
            for t in ["love", "France", "nurse", "entropy", "Paris", "justice"]
        )
    )
    finetune = {
        "base": str(tiny_model),
        "data": str(folder / "memo.jsonl"),
        "out": str(folder / "ft"),
        "steps": 4,
        "batch_size": 4,
        "eval_examples": 1,
        "learning_rate": 0.05,
        "max_length": 96,
        "device": "cpu",
    }
    cfg = make_config(
        folder / "run",
        {"base": tiny_model, "floor": floor_of(tiny_model)},
        folder / "vocab.tsv",
        name="series",
        analysis={"umap_neighbors": 5},
        series=[{"name": "memo", "finetune": finetune}],
        trajectory={"subsamples": 4, "subsample_size": 8, "n_perm": 200, "topology_layers": [0, 2, 4]},
        lens={"top_k": 3},
    )
    return run(cfg, quiet=True)


# a real browser on a served dashboard (the dashboards' and the trajectory tab's tests)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def launch_chromium(playwright):
    """The system Chromium, headless, as every browser test launches it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# a JS expression for every element of the page, Panel's shadow roots included (querySelector stops at them)
ALL_NODES_JS = """(() => {
  const all = [];
  const walk = (n) => {
    if (!n) return;
    all.push(n);
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) walk(c);
  };
  walk(document.body);
  return all;
})()"""


@contextlib.contextmanager
def served_dashboard(run_root):
    """`layerdrift dashboard RUN` on a free port, ready to answer; yields its URL and stops it afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "layerdrift.workbench.cli", "dashboard", str(run_root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zarr_arrays(root) -> dict[str, bytes]:
    """Every captured array of a run (a local path or a remote UPath), as raw bytes, by its path in the run."""
    import numpy as np
    import zarr

    out = {}
    for meta in sorted((root / "captures").rglob("zarr.json")):
        arr = np.asarray(zarr.open_array(store=str(meta.parent), mode="r")[...])
        out[str(meta.parent.relative_to(root))] = arr.tobytes()
    return out


def assert_same_run(a, b) -> None:
    """Byte-identical captures, and every table and artifact of every experiment equal."""
    import numpy as np
    import pandas as pd

    za, zb = zarr_arrays(a.store.root), zarr_arrays(b.store.root)
    assert za.keys() == zb.keys() and len(za) > 10
    assert all(za[k] == zb[k] for k in za), [k for k in za if za[k] != zb[k]][:3]
    assert set(a.tables) == set(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True, obj=name)
    assert set(a.arrays) == set(b.arrays)
    for name in a.arrays:
        for key, values in a.arrays[name].items():
            np.testing.assert_array_equal(values, b.arrays[name][key], err_msg=f"{name}/{key}")
