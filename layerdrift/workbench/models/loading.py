"""Resolve a variant's source and load it as a TransformerLens ``TransformerBridge``.

Sources: an embedded alias, a ``.gguf`` file, a local Hugging Face folder, or a hub id (with
``revision``). Quantization ``nf4`` / ``int8`` goes through bitsandbytes and the quantized
model is handed to the bridge as ``hf_model``. One model is held at a time: ``free`` it first.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from layerdrift.core.hashing import file_sha256
from layerdrift.errors import LayerdriftError, LayerdriftWarning
from layerdrift.hooks.attention import use_fused_attention
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.embedded import EMBEDDED, embedded_gguf, ensure_converted

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ResolvedSource:
    """Where a variant's weights are: kind is embedded | gguf | folder | hub."""

    kind: str
    location: str
    revision: str | None = None
    gguf_file: str | None = None


def resolve_source(spec: VariantSpec) -> ResolvedSource:
    """Check that a variant's source exists (cheaply, before any run folder is written)."""
    s = spec.source
    where = f"variant '{spec.name}'"
    if s in EMBEDDED:
        return ResolvedSource("embedded", s)
    path = Path(s).expanduser()
    if s.endswith(".gguf"):
        if not path.is_file():
            raise LayerdriftError(f"GGUF file {s!r} of {where} does not exist; check the path.")
        return ResolvedSource("gguf", str(path.resolve()))
    if path.is_dir():
        if spec.gguf_file:
            gguf = path / spec.gguf_file
            if not gguf.is_file():
                raise LayerdriftError(
                    f"GGUF file {spec.gguf_file!r} is not in folder {s!r} ({where}); check gguf_file."
                )
            return ResolvedSource("gguf", str(gguf.resolve()))
        if not (path / "config.json").is_file():
            raise LayerdriftError(
                f"folder {s!r} of {where} has no config.json, so it is not a Hugging Face model "
                "folder; point source at one, or at a .gguf file."
            )
        return ResolvedSource("folder", str(path.resolve()), spec.revision)
    if HUB_ID.match(s) and not s.startswith((".", "/", "~")):
        from transformers import AutoConfig

        offline = hub_offline()
        try:
            AutoConfig.from_pretrained(s, revision=spec.revision)
        except Exception as err:
            place = (
                "in the local Hugging Face cache, and the hub is offline or unreachable"
                if offline
                else "on the Hugging Face hub or in the local cache"
            )
            raise LayerdriftError(
                f"model {s!r} of {where} could not be found {place} "
                f"({type(err).__name__}); check the id and revision, or use a local folder, a "
                ".gguf file, or an embedded alias (see `layerdrift models`)."
            ) from None
        return ResolvedSource("hub", s, spec.revision, spec.gguf_file)
    import difflib

    close = difflib.get_close_matches(s, list(EMBEDDED), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise LayerdriftError(
        f"unknown model {s!r} for {where}: it is not an embedded alias ({', '.join(EMBEDDED)}), an existing folder, "
        f"a .gguf file, or a Hugging Face id 'owner/name'; {hint}see `layerdrift models`."
    )


_hub_state: dict[str, bool] = {}


def hub_offline(timeout: float = 3.0) -> bool:
    """Whether hub downloads are off: HF_HUB_OFFLINE is set, or the hub's endpoint refused or ignored one
    connection (checked once per process; then offline mode is switched on, so loads read the cache at once
    instead of retrying for half a minute, and a warning says so)."""
    import huggingface_hub.constants as hf

    if hf.HF_HUB_OFFLINE:
        return True
    if "reachable" not in _hub_state:
        url = urlsplit(hf.ENDPOINT)
        try:
            socket.create_connection(
                (url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout=timeout
            ).close()
            _hub_state["reachable"] = True
        except OSError:
            _hub_state["reachable"] = False
            hf.HF_HUB_OFFLINE = True
            os.environ["HF_HUB_OFFLINE"] = "1"
            warnings.warn(
                f"the Hugging Face hub ({hf.ENDPOINT}) cannot be reached, so hub models are read "
                "from the local cache only.",
                LayerdriftWarning,
                stacklevel=2,
            )
    return not _hub_state["reachable"]


def pick_device(requested: str | None) -> str:
    """``auto`` -> cuda when available, else cpu; otherwise as given."""
    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise LayerdriftError(
            f"device {requested!r} was asked for, but no CUDA GPU is visible; use device = 'cpu' or 'auto'."
        )
    return requested


def pick_attention(requested: str, device: str, eager_hooks: bool, variant: str) -> str:
    """``auto`` -> ``sdpa`` on CUDA unless a captured hook reads inside attention (only eager attention computes
    those), else ``eager``. On the CPU eager is the default: sdpa is no faster at these lengths (2.62 s vs 2.41 s for
    the default capture) and eager keeps the numbers of earlier runs."""
    if requested == "sdpa" and eager_hooks:
        raise LayerdriftError(
            f"variant '{variant}' asks for attn_implementation = 'sdpa', but capture.hooks reads inside attention "
            "(queries, keys, scores or pattern), which only eager attention computes; use 'eager' or 'auto'."
        )
    if requested != "auto":
        return requested
    return "sdpa" if device.startswith("cuda") and not eager_hooks else "eager"


def pick_dtype(requested: str, device: str) -> torch.dtype:
    """``auto`` -> float32 on CPU, bfloat16 on CUDA."""
    if requested == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return TORCH_DTYPES[requested]


@dataclass
class LoadedVariant:
    """A loaded variant: the bridge with its HF model and tokenizer, and provenance for the manifest."""

    name: str
    bridge: Any
    tokenizer: Any
    n_layers: int
    d_model: int
    device: str
    dtype: torch.dtype
    info: dict[str, Any] = field(default_factory=dict)


def _weights_folder(resolved: ResolvedSource) -> tuple[str, dict[str, Any]]:
    """A local folder (or hub id) from_pretrained can read, plus provenance."""
    if resolved.kind in ("embedded", "gguf"):
        gguf = embedded_gguf(resolved.location) if resolved.kind == "embedded" else Path(resolved.location)
        folder, sha = ensure_converted(gguf)
        return str(folder), {"gguf_file": str(gguf), "gguf_sha256": sha, "converted_folder": str(folder)}
    if resolved.kind == "folder":
        hashes = {p.name: file_sha256(p) for p in sorted(Path(resolved.location).glob("*.safetensors"))}
        return resolved.location, {"weight_sha256": hashes}
    return resolved.location, {"revision": resolved.revision}


def quantization_config(spec: VariantSpec) -> Any:
    """bitsandbytes settings for nf4 / int8, or None."""
    if spec.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if spec.quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=spec.double_quant,
            bnb_4bit_compute_dtype=TORCH_DTYPES[spec.compute_dtype],
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def variant_info(
    spec: VariantSpec, model: Any, kind: str, hf_name: str, device: str, dtype: Any, attention: str
) -> dict[str, Any]:
    """What the manifest records of a loaded variant: architecture, size, device, dtype and loading settings."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    architectures = getattr(cfg, "architectures", None) or [type(model).__name__]
    nf4 = spec.quantization == "nf4"
    return {
        "source": spec.source,
        "source_kind": kind,
        "hf_name": hf_name,
        "architecture": architectures[0],
        "n_layers": int(cfg.num_hidden_layers),
        "d_model": int(cfg.hidden_size),
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "quantization": spec.quantization,
        "double_quant": spec.double_quant if nf4 else None,
        "compute_dtype": spec.compute_dtype if nf4 else None,
        "attn_implementation": attention,
        "chat_template": spec.chat_template,
        "prepend_bos": spec.prepend_bos,
    }


def load_hf_model(
    spec: VariantSpec, default_device: str = "auto", default_dtype: str = "auto", eager_hooks: bool = False
) -> tuple[Any, Any, dict[str, Any]]:
    """One variant's Hugging Face model (quantized with bitsandbytes if asked, on its device, in eval mode), its
    tokenizer, and what the manifest records of it (``variant_info``, provenance, ``tokenizer_sha256``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_source(spec)
    device = pick_device(spec.device or default_device)
    dtype = pick_dtype(spec.dtype if spec.dtype != "auto" else default_dtype, device)
    attention = pick_attention(spec.attn_implementation, device, eager_hooks, spec.name)
    folder, provenance = _weights_folder(resolved)
    revision = resolved.revision if resolved.kind == "hub" else None
    quant = quantization_config(spec)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "eager", "revision": revision}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    if resolved.kind == "hub" and resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, revision=revision, **({"gguf_file": resolved.gguf_file} if resolved.gguf_file else {})
        )
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except LayerdriftError:
        raise
    except Exception as err:
        raise LayerdriftError(
            f"variant '{spec.name}' could not be loaded from {folder!r} "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]})."
        ) from None
    if quant is None:
        model = model.to(device)
    model.eval()
    hf_name = EMBEDDED[resolved.location].hf_name if resolved.kind == "embedded" else folder
    info = {**variant_info(spec, model, resolved.kind, hf_name, device, dtype, attention), **provenance}
    info["tokenizer_sha256"] = tokenizer_fingerprint(tokenizer)
    return model, tokenizer, info


def load_variant(
    spec: VariantSpec, default_device: str = "auto", default_dtype: str = "auto", eager_hooks: bool = False
) -> LoadedVariant:
    """Load one variant as a TransformerBridge (quantized with bitsandbytes if asked); ``eager_hooks``: hooks inside
    attention will be read, so attention stays eager (``pick_attention``)."""
    from transformer_lens.model_bridge import TransformerBridge

    model, tokenizer, info = load_hf_model(spec, default_device, default_dtype, eager_hooks)
    device, dtype = info["device"], TORCH_DTYPES[info["dtype"]]
    bridge = TransformerBridge.boot_transformers(
        info["hf_name"], hf_model=model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    if info["attn_implementation"] == "sdpa":  # the bridge forces eager; its attention blocks then call the model's
        model.set_attn_implementation("sdpa")  # own, fused
        use_fused_attention(bridge)
    bridge.eval()
    return LoadedVariant(spec.name, bridge, tokenizer, info["n_layers"], info["d_model"], device, dtype, info)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's vocabulary (two variants share a tokenizer iff these match)."""
    import hashlib
    import json

    vocab = tokenizer.get_vocab()
    return hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()


def free(loaded: LoadedVariant | None) -> None:
    """Drop a loaded variant and return its memory before the next one is loaded."""
    if loaded is None:
        return
    loaded.bridge = None
    loaded.tokenizer = None
    free_memory()


def free_memory() -> None:
    """Return the memory of models no longer referenced (CPU and GPU) before the next one is loaded."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class LazyVariant:
    """A variant loaded on first call (and only then); ``release()`` frees it if it was loaded."""

    def __init__(self, spec: VariantSpec, default_device: str = "auto", default_dtype: str = "auto"):
        self.spec, self.default_device, self.default_dtype = spec, default_device, default_dtype
        self.loaded: LoadedVariant | None = None

    def __call__(self) -> LoadedVariant:
        if self.loaded is None:
            self.loaded = load_variant(self.spec, self.default_device, self.default_dtype)
        return self.loaded

    def release(self) -> None:
        free(self.loaded)
        self.loaded = None
