"""MiVOLO's network: timm's VOLO with a face stream and a body stream joined by cross attention.

MiVOLO (Kuprashevich & Tolstykh, 2023) is not an installable package. Its published checkpoints are
timm VOLO-D1 state dicts whose patch embedding is replaced by two convolutional stems (face RGB,
body RGB), each projected to 192 channels on a 28 x 28 grid, then mixed by a cross attention block
in which the face tokens query the body tokens and the body tokens query the face tokens. Module
and parameter names here follow MiVOLO's public model definition, so a published checkpoint loads
with strict key matching (tests/data/mivolo_d1_keys.json lists every key and shape).

Everything after the patch embedding is timm's VOLO unchanged: its forward (outlookers,
transformers, two class-attention blocks, `head(cls) + 0.5 * max(aux_head(tokens))`) is MiVOLO's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from timm.layers.bottleneck_attn import PosEmbedRel
from timm.models.volo import VOLO, PatchEmbed
from torch import nn

#: VOLO-D1: blocks per stage, channels per stage, attention heads per stage.
D1_LAYERS = (4, 4, 8, 2)
D1_EMBED_DIMS = (192, 384, 384, 384)
D1_NUM_HEADS = (6, 12, 12, 12)
STEM_HIDDEN_DIM = 64
STEM_STRIDE = 2
PATCH_SIZE = 8
#: VOLO downsamples the 28 x 28 patch grid once before the transformer stages.
POOLING_SCALE = 2
#: Width of the cross attention block's MLP, relative to its output channels.
CROSS_MLP_RATIO = 4


class FaceBodyCrossAttention(nn.Module):
    """Single-head attention across the two streams, with relative position logits.

    Face queries read the body's keys and values, body queries read the face's; both results,
    concatenated on channels, go through a LayerNorm over (channels, height, width) and a 1x1-conv
    MLP back to `dim` channels.
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.dim = dim
        self.scale = dim**-0.5
        # 1x1 convolutions giving query, key and value (dim channels each) for each stream.
        self.qkv_f = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=False)
        self.qkv_p = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=False)
        self.pos_embed = PosEmbedRel(grid, dim_head=dim, scale=self.scale)
        self.norm = nn.LayerNorm([dim * 2, *grid])
        self.mlp = Mlp(in_features=dim * 2, hidden_features=dim * CROSS_MLP_RATIO, out_features=dim, use_conv=True)

    def _qkv(self, x: torch.Tensor, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> query, key, value as (B, H*W, dim) token sequences."""
        tokens = conv(x).flatten(2).transpose(1, 2)
        q, k, v = tokens.split(self.dim, dim=2)
        return q, k, v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bias = self.pos_embed(q)  # (B, HW, HW) relative position logits of the querying stream
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)

    def forward(self, face: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = face.shape
        q_face, k_face, v_face = self._qkv(face, self.qkv_f)
        q_body, k_body, v_body = self._qkv(body, self.qkv_p)
        face_reads_body = self._attend(q_face, k_body, v_body)
        body_reads_face = self._attend(q_body, k_face, v_face)
        mixed = torch.cat((face_reads_body, body_reads_face), dim=2)
        mixed = mixed.transpose(1, 2).reshape(batch, 2 * self.dim, height, width)
        return self.mlp(self.norm(mixed))


class FaceBodyPatchEmbed(nn.Module):
    """Patch embedding of a 6-channel input (face RGB, then body RGB) to `embed_dim` x grid."""

    def __init__(self, img_size: int, hidden_dim: int = STEM_HIDDEN_DIM, embed_dim: int = D1_EMBED_DIMS[0]) -> None:
        super().__init__()
        streams = [
            PatchEmbed(
                stem_conv=True,
                stem_stride=STEM_STRIDE,
                patch_size=PATCH_SIZE,
                in_chans=3,
                hidden_dim=hidden_dim,
                embed_dim=embed_dim,
            )
            for _ in range(2)
        ]
        # MiVOLO names the two stems and projections conv1/proj1 (face) and conv2/proj2 (body).
        self.conv1, self.proj1 = streams[0].conv, streams[0].proj
        self.conv2, self.proj2 = streams[1].conv, streams[1].proj
        grid = img_size // PATCH_SIZE
        self.map = FaceBodyCrossAttention(embed_dim, (grid, grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        face = self.proj1(self.conv1(x[:, :3]))
        body = self.proj2(self.conv2(x[:, 3:]))
        return self.map(face, body)


class MiVOLO(VOLO):
    """MiVOLO-D1: 6 input channels (face + body) or 3 (face only); outputs 3 (gender logits male,
    female, normalized age) or 1 (age only)."""

    def __init__(self, *, img_size: int = 224, in_chans: int = 6, num_classes: int = 3) -> None:
        if in_chans not in (3, 6):
            raise ValueError(f"MiVOLO takes 3 or 6 input channels, not {in_chans}")
        if img_size % (PATCH_SIZE * POOLING_SCALE):
            raise ValueError(f"MiVOLO input size must be a multiple of {PATCH_SIZE * POOLING_SCALE}, not {img_size}")
        # Keywords only: timm 1.x inserted constructor arguments that shift MiVOLO's positional call.
        super().__init__(
            layers=list(D1_LAYERS),
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            patch_size=PATCH_SIZE,
            stem_hidden_dim=STEM_HIDDEN_DIM,
            embed_dims=list(D1_EMBED_DIMS),
            num_heads=list(D1_NUM_HEADS),
            pooling_scale=POOLING_SCALE,
        )
        self.img_size = img_size
        self.with_persons = in_chans == 6
        if self.with_persons:
            self.patch_embed = FaceBodyPatchEmbed(img_size)
