"""The one time-conditioned UNet shared by every method (Ho et al. 2020, App. B; PixelCNN++ backbone).

At ch=128, ch_mult=(1,2,2,2), two res blocks, attention at 16x16 and dropout 0.1 on 32x32 inputs it is the
DDPM paper's 35.7M-parameter CIFAR-10 network; presets shrink it for CPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .embeddings import ConditionEmbedding, fourier_features


def norm(channels: int) -> nn.GroupNorm:
    # 32 groups as in the paper; tiny test networks have fewer channels than that.
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and g <= channels)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.block1 = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.block2 = nn.Sequential(norm(c_out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.block1(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.block2(h)


class Attention(nn.Module):
    """Single-head self-attention over pixels, through PyTorch's fused kernel."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = nn.functional.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """Res blocks at one resolution, each optionally followed by attention."""

    def __init__(self, chans: Sequence[tuple[int, int]], emb_dim: int, dropout: float, attn: bool):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(i, o, emb_dim, dropout) for i, o in chans)
        self.attn = nn.ModuleList(Attention(o) if attn else nn.Identity() for _, o in chans)


class Upsample(nn.Sequential):
    """Nearest-neighbour x2 then a 3x3 conv, cropped to the size of the level it returns to.

    Sizes need not be powers of two: downsampling (a stride-2 conv with padding 1) maps n to ceil(n / 2),
    so 7 -> 4 comes back as 8 and is cropped to 7 before the conv. For every n this equals nearest
    interpolation straight to n (pixel i reads floor(i / 2) either way). Kept as (upsample, conv) so the
    parameter names of earlier checkpoints still load.
    """

    def __init__(self, channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        return self[1](self[0](x)[..., : size[0], : size[1]])


def level_sizes(image_size: int, levels: int) -> list[int]:
    """Spatial size at each level: stride-2 convs with padding 1 take n to ceil(n / 2)."""
    sizes = [image_size]
    for _ in range(levels - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class UNet(nn.Module):
    """eps(x, t[, z]) with configurable width, depth, attention resolutions, dropout and extra inputs.

    ``fourier`` adds VDM's Fourier features of the input; ``z_dim`` adds DDGAN's latent; ``out_channels``
    defaults to the input channels (eps- or x0-prediction share the same body).
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        image_size: int = 32,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        out_channels: int | None = None,
        fourier: Sequence[int] = (),
        z_dim: int = 0,
    ):
        super().__init__()
        self.fourier = tuple(fourier)
        emb_dim = 4 * ch
        self.embed = ConditionEmbedding(ch, emb_dim, z_dim)
        self.stem = nn.Conv2d(in_channels * (1 + 2 * len(self.fourier)), ch, 3, padding=1)

        # Attention goes where a level's size is in attn_resolutions, sizes taken as they really are (7 -> 4).
        sizes = level_sizes(image_size, len(ch_mult))
        skips, c = [ch], ch
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in enumerate(ch_mult):
            chans = []
            for _ in range(num_res_blocks):
                chans.append((c, ch * mult))
                c = ch * mult
                skips.append(c)
            self.down.append(Level(chans, emb_dim, dropout, sizes[i] in attn_resolutions))
            last = i == len(ch_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)

        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, dropout), Attention(c), ResBlock(c, c, emb_dim, dropout)])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            chans = []
            for _ in range(num_res_blocks + 1):
                chans.append((c + skips.pop(), ch * mult))
                c = ch * mult
            self.up.append(Level(chans, emb_dim, dropout, sizes[i] in attn_resolutions))
            self.upsample.append(nn.Identity() if i == 0 else Upsample(c))
        self.head = nn.Sequential(norm(c), nn.SiLU(), nn.Conv2d(c, out_channels or in_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        emb = self.embed(t, z)
        if self.fourier:
            x = torch.cat([x, fourier_features(x, self.fourier)], dim=1)
        h = self.stem(x)
        hs = [h]
        for level, down in zip(self.down, self.downsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, emb))
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for level, up in zip(self.up, self.upsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), emb))
            if isinstance(up, Upsample):
                h = up(h, hs[-1].shape[-2:])  # back to the size of the skip it meets next
        return self.head(h)
