"""``layerdrift finetune``: SFT on an instruction set, checkpoints as Hugging Face folders, resumable and cached.

Layout of a fine-tune folder::

    OUT/finetune.json          spec, data set (name, sha256, sizes), base, chat format, losses, checkpoints
    OUT/step-00000/ ...        ordinary Hugging Face folders (config, tokenizer with its chat template, safetensors)
    OUT/resume/                trainable weights + optimiser state of the last checkpoint (a killed run resumes here)

With LoRA, the tensors training never touches are written once (step 0) and hard-linked into later
checkpoints, so a checkpoint costs only the weights that moved.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from layerdrift.concepts.instructions import InstructionSet, load_instruction_set
from layerdrift.core.files import now, read_json, write_json_atomic
from layerdrift.core.hashing import fingerprint
from layerdrift.errors import LayerdriftError
from layerdrift.training.lora import adapter_parameters, attach_lora, merged_view
from layerdrift.training.sft import (
    ChatFormat,
    EncodedExample,
    batch_order,
    checkpoint_steps,
    collate,
    encode_example,
    ensure_chat_template,
    response_loss,
)
from layerdrift.workbench.config import FinetuneSpec, VariantSpec
from layerdrift.workbench.models.identity import package_versions, source_identity
from layerdrift.workbench.models.loading import _weights_folder, pick_device, pick_dtype, resolve_source

MANIFEST = "finetune.json"
FROZEN_SHARD, TRAINED_SHARD = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def checkpoint_folder(out: Path, step: int) -> Path:
    return out / f"step-{step:05d}"


def finetune_fingerprint(spec: FinetuneSpec, data: InstructionSet) -> str:
    """What the checkpoints depend on (not where they are written)."""
    base = VariantSpec(name="base", source=spec.base, revision=spec.base_revision)
    return fingerprint(
        {
            "spec": spec.model_dump(mode="json", exclude={"out", "name"}),
            "data": data.sha256,
            "base": source_identity(base),
            "device": pick_device(spec.device),
        }
    )


def read_finetune_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    return read_json(path, "fine-tune manifest") if path.is_file() else None


def _encode_all(
    tokenizer: Any, fmt: ChatFormat, data: InstructionSet, max_length: int
) -> tuple[list[EncodedExample], int]:
    encoded, dropped, first = [], 0, None
    for i, ex in enumerate(data.examples):
        enc = encode_example(tokenizer, fmt, ex, max_length)
        if enc is None:
            dropped += 1
            first = first if first is not None else i
            continue
        encoded.append(enc)
    if dropped > len(data.examples) // 4:
        raise LayerdriftError(
            f"{dropped} of {len(data.examples)} examples of {data.source!r} have prompts "
            f"longer than max_length = {max_length} tokens "
            f"(the first is example {first + 1}); raise max_length or shorten the prompts."
        )
    return encoded, dropped


def _save_checkpoint(
    model: Any, tokenizer: Any, folder: Path, trained: set[str], frozen_from: Path | None, info: dict[str, Any]
) -> None:
    """Write a dense HF folder atomically; frozen tensors go to a shard hard-linked from ``frozen_from`` when given."""
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with merged_view(model) as dense:
        state, seen = {}, set()
        for name, tensor in dense.state_dict().items():
            if tensor.data_ptr() in seen:  # tied weights (lm_head = embedding) are stored once
                continue
            seen.add(tensor.data_ptr())
            state[name] = tensor.detach().to("cpu").contiguous()
        dense.config.save_pretrained(tmp)
        if getattr(dense, "generation_config", None) is not None:
            dense.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    moved = {n: t for n, t in state.items() if n.rsplit(".", 1)[0] in trained}
    if len(moved) == len(state) or not moved:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    else:
        rest = {n: t for n, t in state.items() if n not in moved}
        source = frozen_from / FROZEN_SHARD if frozen_from is not None else None
        if source is not None and source.is_file():
            try:
                os.link(source, tmp / FROZEN_SHARD)
            except OSError:
                shutil.copy2(source, tmp / FROZEN_SHARD)
        else:
            save_file(rest, str(tmp / FROZEN_SHARD), metadata={"format": "pt"})
        save_file(moved, str(tmp / TRAINED_SHARD), metadata={"format": "pt"})
        weight_map = {**dict.fromkeys(rest, FROZEN_SHARD), **dict.fromkeys(moved, TRAINED_SHARD)}
        total = sum(t.numel() * t.element_size() for t in state.values())
        write_json_atomic(
            tmp / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map}
        )
    write_json_atomic(tmp / "layerdrift-checkpoint.json", info)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


@torch.no_grad()
def _eval_loss(model: Any, examples: list[EncodedExample], batch_size: int, pad: int, device: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        ids, mask, pos, scored = (t.to(device) for t in collate(batch, pad))
        n = int(scored[:, 1:].sum())  # tokens scored (the first token of a row is never predicted)
        total += float(response_loss(model, ids, mask, pos, scored)) * n
        count += n
    model.train()
    return total / max(count, 1)


class _Resume:
    """Trainable tensors + AdamW moments at the last checkpoint, so a killed run continues bit-for-bit."""

    def __init__(self, out: Path):
        self.folder = out / "resume"

    def save(
        self,
        step: int,
        key: str,
        params: dict[str, torch.nn.Parameter],
        optimiser: torch.optim.Optimizer,
        losses: list[float],
    ) -> None:
        tensors = {f"param/{n}": p.detach().cpu().contiguous() for n, p in params.items()}
        for n, p in params.items():
            state = optimiser.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq"):
                if k in state:
                    tensors[f"{k}/{n}"] = state[k].detach().cpu().contiguous()
        tmp = self.folder.with_name(f"resume.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / "state.safetensors"))
        write_json_atomic(tmp / "state.json", {"step": step, "fingerprint": key, "losses": losses})
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(tmp, self.folder)

    def load(
        self, key: str, params: dict[str, torch.nn.Parameter], optimiser: torch.optim.Optimizer
    ) -> tuple[int, list[float]]:
        meta_path = self.folder / "state.json"
        if not meta_path.is_file():
            return 0, []
        meta = read_json(meta_path, "fine-tune resume state")
        if meta.get("fingerprint") != key:
            return 0, []
        tensors = load_file(str(self.folder / "state.safetensors"))
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(tensors[f"param/{n}"])
                if f"exp_avg/{n}" in tensors:
                    optimiser.state[p] = {
                        "step": torch.tensor(float(meta["step"])),
                        "exp_avg": tensors[f"exp_avg/{n}"].to(p.device),
                        "exp_avg_sq": tensors[f"exp_avg_sq/{n}"].to(p.device),
                    }
        return int(meta["step"]), list(meta["losses"])


def finetune(
    spec: FinetuneSpec, out: str | Path | None = None, quiet: bool = False, say: Callable[[str], None] | None = None
) -> Path:
    """Fine-tune (or reuse a finished run with the same fingerprint); returns the checkpoint folder."""
    folder = spec.out_dir(out)
    data = load_instruction_set(spec.data)
    key = finetune_fingerprint(spec, data)
    old = read_finetune_manifest(folder) if folder.is_dir() else None
    if old is not None and old.get("fingerprint") == key and old.get("complete"):
        return folder
    if folder.is_dir() and any(folder.iterdir()) and old is None:
        raise LayerdriftError(
            f"fine-tune folder {str(folder)!r} exists and is not a layerdrift fine-tune; "
            "choose another `out` or empty it."
        )
    if old is not None and old.get("fingerprint") != key:  # our own folder, another recipe: start afresh
        for child in folder.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    started = old.get("started") if old is not None and old.get("fingerprint") == key else None
    trainer = _Trainer(spec, data, folder, key)
    trainer.train(quiet, started or now())
    if say:
        say(f"fine-tune {spec.run_name}: {len(trainer.steps)} checkpoints in {folder}")
    return folder


class _Trainer:
    """One fine-tune: the base model with its trainable parameters, the data split, and the checkpoints so far.

    The set-up order (seed, data split, model, adapters, optimiser, resume) is part of the recipe: a killed run
    resumes bit-for-bit only if it is the same every time.
    """

    def __init__(self, spec: FinetuneSpec, data: InstructionSet, folder: Path, key: str):
        from transformers import AutoTokenizer

        self.spec, self.data, self.folder, self.key = spec, data, folder, key
        self.steps = checkpoint_steps(spec.steps, spec.checkpoints)
        torch.manual_seed(spec.seed)
        self.device = pick_device(spec.device)
        self.dtype = pick_dtype(spec.dtype, self.device)
        resolved = resolve_source(VariantSpec(name="finetune-base", source=spec.base, revision=spec.base_revision))
        self.weights, self.provenance = _weights_folder(resolved)
        self.revision = spec.base_revision if resolved.kind == "hub" else None
        self.tokenizer = AutoTokenizer.from_pretrained(self.weights, revision=self.revision)
        self.fmt = ensure_chat_template(self.tokenizer)
        self.train_set, self.eval_set, self.dropped = self._split_examples()
        self.model, self.params, self.trained = self._trainable_model()
        self.optimiser = torch.optim.AdamW(self.params.values(), lr=spec.lr, weight_decay=0.0)
        self.order = batch_order(len(self.train_set), min(spec.batch_size, len(self.train_set)), spec.steps, spec.seed)
        pad_token = self.tokenizer.pad_token_id
        self.pad = pad_token if pad_token is not None else (self.tokenizer.eos_token_id or 0)
        self.resume = _Resume(folder)
        self.start, self.losses = self.resume.load(key, self.params, self.optimiser)
        self.checkpoints = self._finished_checkpoints()

    def _split_examples(self) -> tuple[list[EncodedExample], list[EncodedExample], int]:
        """(training examples, held-out evaluation examples, examples dropped as too long), split by the seed."""
        spec = self.spec
        encoded, dropped = _encode_all(self.tokenizer, self.fmt, self.data, spec.max_length)
        if len(encoded) <= spec.eval_examples:
            raise LayerdriftError(
                f"instruction data set {self.data.source!r} has {len(encoded)} usable examples, not "
                f"more than eval_examples = {spec.eval_examples}; lower eval_examples or "
                "add examples."
            )
        split = np.random.default_rng(spec.seed).permutation(len(encoded))
        eval_set = [encoded[i] for i in sorted(split[: spec.eval_examples])]
        return [encoded[i] for i in sorted(split[spec.eval_examples :])], eval_set, dropped

    def _trainable_model(self) -> tuple[Any, dict[str, torch.nn.Parameter], set[str]]:
        """The base model in training mode, the parameters to train, and the modules they belong to."""
        from transformers import AutoModelForCausalLM

        spec = self.spec
        model = AutoModelForCausalLM.from_pretrained(
            self.weights, revision=self.revision, dtype=self.dtype, attn_implementation="eager"
        ).to(self.device)
        model.train()
        if spec.method == "lora":
            wrapped = attach_lora(model, spec.lora_targets, spec.lora_rank, spec.lora_alpha, spec.seed)
            return model, adapter_parameters(model), set(wrapped)
        params = dict(model.named_parameters())
        return model, params, {n.rsplit(".", 1)[0] for n in params}

    def _finished_checkpoints(self) -> dict[int, dict[str, Any]]:
        """Checkpoints up to the resume point, read from their own folders (the manifest may lag behind them)."""
        found = {}
        for s in self.steps:
            info_path = checkpoint_folder(self.folder, s) / "layerdrift-checkpoint.json"
            if s <= self.start and info_path.is_file():
                found[s] = {
                    **read_json(info_path, "checkpoint record"),
                    "folder": checkpoint_folder(self.folder, s).name,
                }
        return found

    def manifest(self, started: str) -> dict[str, Any]:
        spec, data = self.spec, self.data
        return {
            "fingerprint": self.key,
            "complete": False,
            "spec": spec.model_dump(mode="json"),
            "objective": data.name,
            "data": {
                "name": data.name,
                "source": data.source,
                "sha256": data.sha256,
                "n_examples": len(data.examples),
                "n_train": len(self.train_set),
                "n_eval": len(self.eval_set),
                "dropped_too_long": self.dropped,
            },
            "base": {"source": spec.base, "revision": spec.base_revision, "weights": self.weights, **self.provenance},
            "chat_format": self.fmt.name,
            "method": spec.method,
            "learning_rate": spec.lr,
            "schedule": self.steps,
            "seed": spec.seed,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "packages": package_versions(),
            "started": started,
        }

    def save(self, step: int, train_loss: float | None, manifest: dict[str, Any]) -> None:
        """Write checkpoint ``step``, the resume state and the manifest (in that order: the manifest never names a
        checkpoint that is not on disk)."""
        spec = self.spec
        info = {
            "step": step,
            "objective": self.data.name,
            "data_sha256": self.data.sha256,
            "seed": spec.seed,
            "method": spec.method,
            "train_loss": train_loss,
            "eval_loss": _eval_loss(self.model, self.eval_set, spec.batch_size, self.pad, self.device),
            "examples_seen": step * spec.batch_size,
        }
        previous = checkpoint_folder(self.folder, 0) if step else None
        _save_checkpoint(self.model, self.tokenizer, checkpoint_folder(self.folder, step), self.trained, previous, info)
        self.resume.save(step, self.key, self.params, self.optimiser, self.losses)
        self.checkpoints[step] = {**info, "folder": checkpoint_folder(self.folder, step).name}
        write_json_atomic(self.folder / MANIFEST, {**manifest, **self.progress()})

    def progress(self) -> dict[str, Any]:
        return {"losses": self.losses, "checkpoints": [self.checkpoints[s] for s in sorted(self.checkpoints)]}

    def train(self, quiet: bool, started: str) -> None:
        """Train from the resume point to the last step, saving each scheduled checkpoint; mark the run complete."""
        spec, manifest = self.spec, self.manifest(started)
        self.folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if 0 in self.steps and 0 not in self.checkpoints:
            self.save(0, None, manifest)
        with _loss_bar(quiet) as progress:
            task = (
                progress.add_task(
                    f"fine-tune {spec.run_name}", total=spec.steps, completed=self.start, loss=float("nan")
                )
                if progress
                else None
            )
            for step in range(self.start + 1, spec.steps + 1):
                batch = [self.train_set[i] for i in self.order[step - 1]]
                ids, mask, pos, scored = (t.to(self.device) for t in collate(batch, self.pad))
                loss = response_loss(self.model, ids, mask, pos, scored)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(self.params.values()), 1.0)
                self.optimiser.step()
                self.optimiser.zero_grad(set_to_none=True)
                self.losses.append(float(loss.detach()))
                if progress:
                    progress.update(task, advance=1, loss=self.losses[-1])
                if step in self.steps:
                    self.save(step, self.losses[-1], manifest)
        finished = {"complete": True, "finished": now(), "train_seconds": round(time.perf_counter() - t0, 1)}
        write_json_atomic(self.folder / MANIFEST, {**manifest, **self.progress(), **finished})


def _loss_bar(quiet: bool):
    from contextlib import nullcontext

    if quiet:
        return nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps  loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def series_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint in a folder, in training order: a fine-tune manifest, else step-N /
    checkpoint-N
    subfolders."""
    manifest = read_finetune_manifest(folder)
    if manifest is not None:
        if not manifest.get("complete"):
            raise LayerdriftError(
                f"fine-tune folder {str(folder)!r} is unfinished; run `layerdrift finetune` (or "
                "`layerdrift run`) again to complete it."
            )
        return [(c["step"], folder / c["folder"]) for c in manifest["checkpoints"]]
    import re

    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        m = re.fullmatch(r"(?:step|checkpoint)-?(\d+)", child.name)
        if m and (child / "config.json").is_file():
            found.append((int(m.group(1)), child))
    if len(found) < 2:
        raise LayerdriftError(
            f"checkpoint folder {str(folder)!r} holds {len(found)} checkpoints (subfolders "
            "step-N or checkpoint-N with a config.json); a series needs at least 2."
        )
    return sorted(found)
