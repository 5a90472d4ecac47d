"""The one time-conditioned UNet shared by every method (Ho et al. 2020, App. B; PixelCNN++ backbone).

At ch=128, ch_mult=(1,2,2,2), two res blocks, attention at 16x16 and dropout 0.1 on 32x32 inputs it is the
DDPM paper's 35.7M-parameter CIFAR-10 network; presets shrink it for CPUs. With ``z_dim`` > 0 it is DDGAN's
generator body: a latent z, mapped by PixelNorm and an MLP, sets the scale and shift of both group norms
of every residual block (adaptive group norm, Xiao et al. 2022's NCSN++ with AdaGN); the time embedding
stays z-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .embeddings import AdaGroupNorm, ConditionEmbedding, LatentMapping, fourier_features

# Each group norm averages over at least this many values. 32 groups on a 2x2 latent average over 4 numbers
# each, which erases every channel's level and scale: the learned eps then has an error floor at high noise
# that a deterministic sampler amplifies into latents 2-3x too wide (the digits f = 4 defect).
MIN_GROUP_VALUES = 16


def groups(channels: int, pixels: int | None = None, min_values: int = MIN_GROUP_VALUES) -> int:
    """32 groups as in the paper, fewer where the channels or a group's values (channels / groups x ``pixels``,
    the feature map's area) would be fewer than ``min_values``; ``pixels`` None: the channels alone decide
    (feature maps of any size)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and g <= channels
                and (pixels is None or channels // g * pixels >= min_values or g == 1))


def norm(channels: int, pixels: int | None = None, min_values: int = MIN_GROUP_VALUES) -> nn.GroupNorm:
    return nn.GroupNorm(groups(channels, pixels, min_values), channels)


class ResBlock(nn.Module):
    """Two convolutions with the time embedding added between them; ``z_emb_dim`` > 0 makes both group
    norms adaptive (scale and shift from the mapped latent), as DDGAN's ResnetBlock*_Adagn."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, z_emb_dim: int = 0,
                 pixels: int | None = None, min_values: int = MIN_GROUP_VALUES):
        super().__init__()

        def gn(c: int) -> nn.Module:
            return AdaGroupNorm(groups(c, pixels, min_values), c, z_emb_dim) if z_emb_dim else norm(c, pixels, min_values)

        # Module names and order as before the AdaGN path: DDPM checkpoints and initialisations are unchanged.
        self.block1 = nn.Sequential(gn(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.block2 = nn.Sequential(gn(c_out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor, zemb: Tensor | None = None) -> Tensor:
        h = _normed(self.block1, x, zemb) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + _normed(self.block2, h, zemb)


def _normed(block: nn.Sequential, x: Tensor, zemb: Tensor | None) -> Tensor:
    """Run ``block``, whose first layer is a group norm, adaptive ones taking the mapped latent."""
    first, *rest = block
    h = first(x, zemb) if isinstance(first, AdaGroupNorm) else first(x)
    for layer in rest:
        h = layer(h)
    return h


class Attention(nn.Module):
    """Single-head self-attention over pixels, through PyTorch's fused kernel."""

    def __init__(self, channels: int, pixels: int | None = None, min_values: int = MIN_GROUP_VALUES):
        super().__init__()
        self.norm = norm(channels, pixels, min_values)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = nn.functional.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """Res blocks at one resolution, each optionally followed by attention."""

    def __init__(self, chans: Sequence[tuple[int, int]], emb_dim: int, dropout: float, attn: bool, z_emb_dim: int = 0,
                 pixels: int | None = None, min_values: int = MIN_GROUP_VALUES):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(i, o, emb_dim, dropout, z_emb_dim, pixels, min_values) for i, o in chans)
        self.attn = nn.ModuleList(Attention(o, pixels, min_values) if attn else nn.Identity() for _, o in chans)


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

    ``fourier`` adds VDM's Fourier features of the input; ``z_dim`` adds DDGAN's latent through a mapping
    network (``z_emb_dim`` wide, ``n_mlp`` hidden layers) into adaptive group norms; ``out_channels``
    defaults to the input channels (eps- or x0-prediction share the same body); ``output="tanh"`` squashes
    the output into [-1, 1] (DDGAN's generator of images). ``norm_min_values``: the fewest values a group norm
    averages (channels per group x the map's area); each group's mean and scale are lost to the layers after it.
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
        z_emb_dim: int = 256,
        n_mlp: int = 3,
        output: str = "linear",
        norm_min_values: int = MIN_GROUP_VALUES,
    ):
        super().__init__()
        if output not in ("linear", "tanh"):
            raise ValueError(f"unknown output {output!r}: use 'linear' or 'tanh'")
        self.fourier = tuple(fourier)
        self.output = output
        emb_dim = 4 * ch
        self.embed = ConditionEmbedding(ch, emb_dim)
        self.mapping = LatentMapping(z_dim, z_emb_dim, n_mlp) if z_dim else None
        zd = z_emb_dim if z_dim else 0
        mv = norm_min_values
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
            self.down.append(Level(chans, emb_dim, dropout, sizes[i] in attn_resolutions, zd, sizes[i] ** 2, mv))
            last = i == len(ch_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)

        area = sizes[-1] ** 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, dropout, zd, area, mv), Attention(c, area, mv),
                                  ResBlock(c, c, emb_dim, dropout, zd, area, mv)])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            chans = []
            for _ in range(num_res_blocks + 1):
                chans.append((c + skips.pop(), ch * mult))
                c = ch * mult
            self.up.append(Level(chans, emb_dim, dropout, sizes[i] in attn_resolutions, zd, sizes[i] ** 2, mv))
            self.upsample.append(nn.Identity() if i == 0 else Upsample(c))
        self.head = nn.Sequential(norm(c, sizes[0] ** 2, mv), nn.SiLU(), nn.Conv2d(c, out_channels or in_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        emb = self.embed(t)
        zemb = self.mapping(z) if self.mapping is not None else None
        if self.fourier:
            x = torch.cat([x, fourier_features(x, self.fourier)], dim=1)
        h = self.stem(x)
        hs = [h]
        for level, down in zip(self.down, self.downsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, emb, zemb))
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb, zemb)), emb, zemb)
        for level, up in zip(self.up, self.upsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), emb, zemb))
            if isinstance(up, Upsample):
                h = up(h, hs[-1].shape[-2:])  # back to the size of the skip it meets next
        out = self.head(h)
        return torch.tanh(out) if self.output == "tanh" else out
