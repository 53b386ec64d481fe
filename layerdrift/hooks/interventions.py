"""Forward passes that change activations: activation patching and steering, on TransformerLens hook points.

Every function takes token-id sequences, pads them on the left (so the last column is every
row's last real token) and reads only the next-token logits it is asked for, so a sweep over
layers x positions never holds full-vocabulary logits for more than one batch.

Component hook points per block (``blocks.{i}.``): ``hook_resid_post`` (block output),
``hook_attn_out`` and ``hook_mlp_out``. The final norm's output is never a patch target: writing
a post-norm state into a block output is the bug that gave a published study its spurious
last-layer dip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

COMPONENT_HOOKS = {
    "resid": "blocks.{layer}.hook_resid_post",
    "attn": "blocks.{layer}.hook_attn_out",
    "mlp": "blocks.{layer}.hook_mlp_out",
}
ALL_POSITIONS = 0  # the offset value that means "every position at once"


def component_hook(component: str, layer: int) -> str:
    """Hook name of a block's residual output, attention output or MLP output."""
    return COMPONENT_HOOKS[component].format(layer=layer)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"]]:
    """Left-padded ids and attention mask (the model derives positions from the mask)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[row, width - len(s) :] = 1
    return ids, mask


def _device(bridge: torch.nn.Module) -> torch.device:
    return next(bridge.parameters()).device


@torch.no_grad()
def next_token_logits(
    bridge: torch.nn.Module,
    ids: Int[torch.Tensor, "b t"],
    mask: Int[torch.Tensor, "b t"],
    fwd_hooks: Sequence[tuple[str, object]] = (),
) -> Float[torch.Tensor, "b v"]:
    """Logits for the token after the last column, with optional hooks active (float32)."""
    device = _device(bridge)
    with bridge.hooks(fwd_hooks=list(fwd_hooks)):
        try:
            out = bridge(ids.to(device), attention_mask=mask.to(device), return_type="logits", logits_to_keep=1)
        except TypeError:  # an architecture without logits_to_keep
            out = bridge(ids.to(device), attention_mask=mask.to(device), return_type="logits")
    return out[:, -1].float()


def greedy_continuations(
    bridge: torch.nn.Module,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    max_new_tokens: int,
    stop_ids: Sequence[int] = (),
    batch_size: int = 32,
) -> list[list[int]]:
    """Greedy decoding of up to ``max_new_tokens`` per prompt (stop tokens end a row and are kept)."""
    out: list[list[int]] = []
    stops = set(stop_ids)
    for start in range(0, len(seqs), batch_size):
        rows = [list(s) for s in seqs[start : start + batch_size]]
        new: list[list[int]] = [[] for _ in rows]
        for _ in range(max_new_tokens):
            live = [i for i, n in enumerate(new) if not (n and n[-1] in stops)]
            if not live:
                break
            ids, mask = left_pad([rows[i] + new[i] for i in live], pad_id)
            tokens = next_token_logits(bridge, ids, mask).argmax(-1).tolist()
            for i, tok in zip(live, tokens):
                new[i].append(int(tok))
        out.extend(new)
    return out


def _left_padded_source(
    values: Sequence[np.ndarray], lengths: Sequence[int], width: int, d: int
) -> Float[torch.Tensor, "b t d"]:
    """Stack per-prompt (len_i, d) activations into left-padded (b, width, d) coordinates."""
    src = torch.zeros((len(values), width, d), dtype=torch.float32)
    for row, (v, n) in enumerate(zip(values, lengths)):
        src[row, width - n :] = torch.as_tensor(np.asarray(v[:n]), dtype=torch.float32)
    return src


def _replace(source: torch.Tensor, where: torch.Tensor):
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        return torch.where(where[..., None], source.to(act.dtype), act)

    return hook


@torch.no_grad()
def _readout_cells(
    bridge: torch.nn.Module,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    cells: Sequence[tuple[int, int]],
    read_ids: Int[np.ndarray, "n k"],
    batch_size: int,
    hooks_for: Callable[[Sequence[tuple[int, int]], torch.Tensor], list[tuple[str, object]]],
) -> tuple[Float[np.ndarray, "c k"], Float[np.ndarray, " c"]]:
    """For (condition, prompt) cells, batch by batch: logits of the prompt's ``read_ids`` and the log-sum-exp.

    ``hooks_for(chunk, mask)`` gives the forward hooks of one batch (rows = the chunk's cells).
    """
    logits, lse = np.zeros((len(cells), read_ids.shape[1])), np.zeros(len(cells))
    for start in range(0, len(cells), batch_size):
        chunk = cells[start : start + batch_size]
        rows = [i for _, i in chunk]
        ids, mask = left_pad([seqs[i] for i in rows], pad_id)
        out = next_token_logits(bridge, ids, mask, hooks_for(chunk, mask))
        logits[start : start + len(chunk)] = (
            out.gather(1, torch.as_tensor(read_ids[rows], device=out.device)).cpu().numpy()
        )
        lse[start : start + len(chunk)] = torch.logsumexp(out, dim=-1).cpu().numpy()
    return logits, lse


def patch_sweep(
    bridge: torch.nn.Module,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    hook_names: Sequence[str],
    sources: dict[str, Float[np.ndarray, "n t d"]],
    offsets: Sequence[int],
    read_ids: Int[np.ndarray, "n k"],
    batch_size: int = 32,
    progress=None,
) -> tuple[Float[np.ndarray, "h o n k"], Float[np.ndarray, "h o n"], Bool[np.ndarray, "o n"]]:
    """Patch the source activations into this model, one hook point and one position at a time.

    ``sources[hook]`` holds, per prompt, the source variant's activation at every real token
    (left-aligned, as the run store keeps position ``all``). ``offsets`` are positions counted
    from the end (-1 = last token), or ``ALL_POSITIONS`` for every position at once. Returns
    the logits of ``read_ids`` and the log-sum-exp at the next-token slot for every
    (hook, offset, prompt), and which (offset, prompt) cells exist (a prompt shorter than an
    offset has nothing to patch there).
    """
    n, lengths = len(seqs), [len(s) for s in seqs]
    valid = np.array([[off == ALL_POSITIONS or -off <= length for length in lengths] for off in offsets])
    logits = np.full((len(hook_names), len(offsets), n, read_ids.shape[1]), np.nan)
    lse = np.full((len(hook_names), len(offsets), n), np.nan)
    cells = [(o, i) for o in range(len(offsets)) for i in range(n) if valid[o, i]]
    index = tuple(np.array(cells).T) if cells else (np.array([], int), np.array([], int))
    device = _device(bridge)
    for h, hook in enumerate(hook_names):

        def patch_hooks(chunk, mask, hook=hook):
            width = mask.shape[1]
            src = _left_padded_source(
                [sources[hook][i] for _, i in chunk], [lengths[i] for _, i in chunk], width, sources[hook][0].shape[-1]
            )
            where = torch.zeros((len(chunk), width), dtype=torch.bool)
            for r, (o, i) in enumerate(chunk):
                if offsets[o] == ALL_POSITIONS:
                    where[r, width - lengths[i] :] = True
                else:
                    where[r, width + offsets[o]] = True
            return [(hook, _replace(src.to(device), where.to(device)))]

        logits[h][index], lse[h][index] = _readout_cells(bridge, seqs, pad_id, cells, read_ids, batch_size, patch_hooks)
        if progress is not None:
            progress()
    return logits, lse, valid


def clean_readout(
    bridge: torch.nn.Module,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    read_ids: Int[np.ndarray, "n k"],
    batch_size: int = 32,
) -> tuple[Float[np.ndarray, "n k"], Float[np.ndarray, " n"]]:
    """Unpatched logits of ``read_ids`` and the log-sum-exp at the next-token slot."""
    return _readout_cells(
        bridge, seqs, pad_id, [(0, i) for i in range(len(seqs))], read_ids, batch_size, lambda chunk, mask: []
    )


def _add(vector: torch.Tensor, where: torch.Tensor):
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        return act + where[..., None].to(act.dtype) * vector.to(act.dtype)

    return hook


def steered_readout(
    bridge: torch.nn.Module,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    hook_name: str,
    vectors: Float[np.ndarray, "s d"],
    read_ids: Int[np.ndarray, "n k"],
    batch_size: int = 32,
) -> Float[np.ndarray, "s n k"]:
    """Logits of ``read_ids`` with each steering vector added at every real position of ``hook_name``."""
    n, s = len(seqs), vectors.shape[0]
    cells = [(j, i) for j in range(s) for i in range(n)]
    device = _device(bridge)

    def steer_hooks(chunk, mask):
        vec = torch.as_tensor(vectors[[j for j, _ in chunk]], dtype=torch.float32, device=device)[:, None, :]
        return [(hook_name, _add(vec, mask.bool().to(device)))]

    logits, _ = _readout_cells(bridge, seqs, pad_id, cells, read_ids, batch_size, steer_hooks)
    return logits.reshape(s, n, read_ids.shape[1])
