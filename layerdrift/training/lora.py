"""LoRA adapters on a model's linear layers, and the merged weights ``W + (alpha / r) * B @ A``.

Hu et al. 2021: the frozen weight ``W`` gets a trainable low-rank update; ``B`` starts at zero,
so step 0 is the base model exactly. Saving merges the update, so each checkpoint is an ordinary
dense model that any loader reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from layerdrift.errors import LayerdriftError


class LoRALinear(nn.Module):
    """``base(x) + scale * x A^T B^T`` with ``base`` frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(
            torch.empty(rank, base.in_features, dtype=base.weight.dtype, device=base.weight.device)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, rank, dtype=base.weight.dtype, device=base.weight.device)
        )
        bound = 1 / math.sqrt(base.in_features)  # kaiming-uniform(a=sqrt(5)) as nn.Linear and peft use
        with torch.no_grad():
            self.lora_A.copy_(torch.rand(self.lora_A.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain Linear holding ``W + scale * B @ A`` (a copy; the adapter is untouched)."""
        out = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.lora_B @ self.lora_A))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def attach_lora(model: nn.Module, targets: list[str], rank: int, alpha: float, seed: int) -> list[str]:
    """Freeze the model and wrap every Linear whose attribute name is in ``targets``; returns the wrapped module
    names."""
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, alpha, generator))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        found = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise LayerdriftError(
            f"lora_targets {targets} match no linear layer of this model; its linear layers are named {found}."
        )
    return wrapped


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if n.endswith(("lora_A", "lora_B"))}


@contextmanager
def merged_view(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily swap every adapter for its merged Linear, so the model saves and runs as a dense one."""
    swaps = []
    for _name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
                swaps.append((module, child_name, child))
    try:
        yield model
    finally:
        for module, child_name, child in swaps:
            setattr(module, child_name, child)
