"""A MiVOLO-D1 checkpoint made at test time: the real architecture with random weights, saved in
the published file's format (a timm training checkpoint dict with an argparse Namespace inside,
plus MiVOLO's age-scale meta fields). Tests never fetch the real weights."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

#: Meta fields as the published mivolo_d1.pth.tar reports them.
PUBLISHED_META = {"min_age": 1, "max_age": 95, "avg_age": 48, "no_gender": False, "with_persons_model": True}


@cache
def _random_state(seed: int, in_chans: int) -> dict[str, Any]:
    import torch

    from photodb.ml.mivolo_model import MiVOLO

    torch.manual_seed(seed)
    return MiVOLO(in_chans=in_chans).state_dict()


def make_mivolo_checkpoint(
    path: Path,
    *,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
    ema: bool = False,
    in_chans: int = 6,
) -> Path:
    """Save a random-weight MiVOLO-D1 checkpoint at `path`.

    `meta` replaces fields of PUBLISHED_META; `edit` may change the state dict in place before
    saving; `ema` stores the weights as a DataParallel EMA copy (`module.` prefixes, an FDS
    buffer) next to an unusable `state_dict`, as timm's trainer can."""
    import torch

    state = {name: tensor.clone() for name, tensor in _random_state(seed, in_chans).items()}
    if edit is not None:
        edit(state)
    args = argparse.Namespace(model="mivolo_d1_224", input_size=[in_chans, 224, 224], batch_size=176, lr=1e-5)
    checkpoint: dict[str, Any] = {"epoch": 377, "arch": "mivolo_d1_224", "args": args, "version": 2}
    if ema:
        checkpoint["state_dict"] = {"module.pos_embed": torch.zeros(1)}
        checkpoint["state_dict_ema"] = {f"module.{k}": v for k, v in state.items()} | {
            "module.fds.running_mean_last_epoch": torch.zeros(384)
        }
    else:
        checkpoint["state_dict"] = state
    checkpoint.update(PUBLISHED_META if meta is None else PUBLISHED_META | meta)
    checkpoint = {k: v for k, v in checkpoint.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
