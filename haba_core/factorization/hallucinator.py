"""Hallucinators: tiny encoder → affine (σ⊙f+μ) → decoder networks that turn a basis into an image.

All |H| hallucinators of a set share one architecture, so their weights are stored stacked
(leading dimension = hallucinator index) in a :class:`HallucinatorBank`. Composition of many
(basis, hallucinator) pairs is batched: samples are grouped by hallucinator and each group goes
through one convolution call per layer — never a Python loop per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

INITS = ("random", "identity", "pca")


@dataclass
class HallucinatorConfig:
    """Architecture and initialisation of one hallucinator (paper Sec. 3.1, Tab. 9/10/13).

    ``depth`` conv blocks in the encoder and mirrored in the decoder (paper default 1; 0 means the affine
    transform alone); ``channels`` = c'' (``None`` → image channels, the paper's default);
    ``activation`` "relu" (paper) or "none"; ``padding`` "same" (paper: spatial size preserved) or
    "valid" (the official code's variant: unpadded encoder convs and transposed-conv decoder);
    ``init`` "pca" (default; data-driven: identity convolutions, and the shift μ of hallucinator j set to
    ±``pca_scale`` standard deviations along a principal direction of within-class variation of the real
    data, so the hallucinators start as distinct, realistic variations of every basis — see
    :func:`within_class_directions`; needs ``padding="same"``), "identity" (the identity map plus
    ``init_noise`` Gaussian noise on the weights) or "random" (PyTorch's random init, as in the paper;
    "default" is accepted as an alias). Without data (e.g. a bank rebuilt from a file) "pca" acts as
    "identity". ``affine_stride`` s > 1 stores σ and μ at 1/s of the feature map's height and width and
    up-samples them bilinearly (an option of this toolkit, not the paper: it makes a hallucinator ~s²
    times cheaper, leaving more of a small budget to bases). ``match_stats`` re-standardises every composed
    image to its basis's mean and standard deviation (over all pixels; an option of this toolkit, not the
    paper): instance-normalised distillation networks barely see image scale, so under DM the hallucinators'
    output scale can drift far from the data's (BENCHMARKS.md, continual section); this anchors it.
    ``layout`` shapes hallucinators of depth ≥ 2: "flat" (this class's default; every block keeps c''
    channels at full resolution) or "pyramid" (the paper's Tab. 9, and :class:`DistillConfig`'s default: the
    first block has ``channels`` or 8 channels, each further encoder block doubles them with a stride-2
    convolution, σ/μ live at the smallest level, and the decoder mirrors it with bilinear up-sampling before
    each convolution — 10,963 / 16,131 numbers at depth 2 / 3 on 3×32×32, as in Tab. 9). Depth 0 and 1 are
    the same under both. ``shared_codec`` (paper Tab. 11, an option): one encoder/decoder shared by all
    hallucinators of the bank, each keeping its own σ/μ — stored once, so |H| hallucinators cost
    codec + |H|·σ/μ.
    """

    depth: int = 1
    channels: int | None = None
    activation: str = "relu"
    padding: str = "same"
    init: str = "pca"
    init_noise: float = 0.01
    pca_scale: float = 1.0
    affine_stride: int = 1
    match_stats: bool = False
    layout: str = "flat"
    shared_codec: bool = False

    @classmethod
    def official(cls) -> "HallucinatorConfig":
        """The public code's variant: no activations, unpadded convolutions."""
        return cls(activation="none", padding="valid", init="random")

    def validate(self) -> None:
        if self.depth < 0:
            raise ConfigError(f"hallucinator depth must be >= 0, got {self.depth}")
        if self.activation not in ("relu", "none"):
            raise ConfigError(f"hallucinator activation must be relu|none, got {self.activation!r}")
        if self.padding not in ("same", "valid"):
            raise ConfigError(f"hallucinator padding must be same|valid, got {self.padding!r}")
        if self.init == "default":
            self.init = "random"
        if self.init not in INITS:
            raise ConfigError(f"hallucinator init must be one of {INITS}, got {self.init!r}")
        if self.init == "pca" and self.padding != "same":
            raise ConfigError("the pca hallucinator init needs padding='same'; use init='random' or 'identity'")
        if self.affine_stride < 1:
            raise ConfigError(f"affine_stride must be >= 1, got {self.affine_stride}")
        if self.channels is not None and self.channels < 1:
            raise ConfigError(f"hallucinator channels must be >= 1, got {self.channels}")
        if self.layout not in ("flat", "pyramid"):
            raise ConfigError(f"hallucinator layout must be flat|pyramid, got {self.layout!r}")
        if self.pyramid and self.init in ("identity", "pca"):
            raise ConfigError(f"the {self.init} hallucinator init needs layout='flat' at depth >= 2 (a pyramid "
                              "hallucinator down-samples and cannot start as the identity)")
        if self.pyramid and self.padding != "same":
            raise ConfigError("a pyramid hallucinator (depth >= 2) needs padding='same'; use layout='flat'")

    @property
    def pyramid(self) -> bool:
        """True when the blocks down-sample (layout "pyramid" at depth >= 2)."""
        return self.layout == "pyramid" and self.depth >= 2


@dataclass
class _Layers:
    enc_io: list[tuple[int, int]]
    dec_io: list[tuple[int, int]]
    feature_channels: int
    level_sizes: list[tuple[int, int]]  # spatial size after each encoder block (feature size = last)


def _layers(in_channels: int, out_channels: int, size: tuple[int, int], config: HallucinatorConfig) -> _Layers:
    """Channel and size plan of one hallucinator (shared by the bank and the parameter count)."""
    depth = config.depth
    if depth == 0:
        if in_channels != out_channels:
            raise ConfigError("a depth-0 hallucinator (affine only) needs basis channels == image channels")
        return _Layers([], [], in_channels, [size])
    if config.pyramid:
        widths = [(config.channels or 8) * 2 ** k for k in range(depth)]
        sizes = [size]
        for _ in range(depth - 1):
            sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
        enc_io = [(in_channels if k == 0 else widths[k - 1], widths[k]) for k in range(depth)]
        dec_io = [(widths[depth - 1 - k], widths[depth - 2 - k] if k < depth - 1 else out_channels)
                  for k in range(depth)]
        return _Layers(enc_io, dec_io, widths[-1], sizes)
    feat = config.channels or out_channels
    shrink = 2 * depth if config.padding == "valid" else 0
    fh, fw = size[0] - shrink, size[1] - shrink
    if fh < 1 or fw < 1:
        raise ConfigError(f"valid-padding hallucinator of depth {depth} does not fit a {size} basis")
    enc_io = [(in_channels if k == 0 else feat, feat) for k in range(depth)]
    dec_io = [(feat, feat if k < depth - 1 else out_channels) for k in range(depth)]
    return _Layers(enc_io, dec_io, feat, [(fh, fw)])


def _uniform_(t: Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        t.copy_(torch.rand(t.shape, generator=generator) * 2 * bound - bound)


class HallucinatorBank(nn.Module):
    """``count`` hallucinators mapping ``in_channels``×H×W bases to ``out_channels``×H×W images.

    Parameters are stacked along dim 0: ``enc_w{k}`` (count, c_out, c_in, 3, 3), ``enc_b{k}``,
    ``sigma``/``mu`` (count, c'', h'', w''), ``dec_w{k}``, ``dec_b{k}``.
    """

    def __init__(self, count: int, in_channels: int, out_channels: int, size: tuple[int, int],
                 config: HallucinatorConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        config = config or HallucinatorConfig()
        config.validate()
        if count < 1:
            raise ConfigError(f"a hallucinator bank needs at least one hallucinator, got {count}")
        self.count, self.in_channels, self.out_channels = count, in_channels, out_channels
        self.size = (int(size[0]), int(size[1]))
        self.config = config
        plan = _layers(in_channels, out_channels, self.size, config)
        feat, enc_io, dec_io = plan.feature_channels, plan.enc_io, plan.dec_io
        self.feature_channels = feat
        self._level_sizes = plan.level_sizes
        self.feature_size = plan.level_sizes[-1]
        ah, aw = affine_size(self.feature_size, config.affine_stride)
        transposed = config.padding == "valid"
        n_codec = 1 if config.shared_codec else count
        for k, (ci, co) in enumerate(enc_io):
            self.register_parameter(f"enc_w{k}", nn.Parameter(torch.empty(n_codec, co, ci, 3, 3)))
            self.register_parameter(f"enc_b{k}", nn.Parameter(torch.empty(n_codec, co)))
        self.sigma = nn.Parameter(torch.ones(count, feat, ah, aw))
        self.mu = nn.Parameter(torch.zeros(count, feat, ah, aw))
        for k, (ci, co) in enumerate(dec_io):
            shape = (n_codec, ci, co, 3, 3) if transposed else (n_codec, co, ci, 3, 3)
            self.register_parameter(f"dec_w{k}", nn.Parameter(torch.empty(shape)))
            self.register_parameter(f"dec_b{k}", nn.Parameter(torch.empty(n_codec, co)))
        self._enc_io, self._dec_io = enc_io, dec_io
        self._codec_count = 1 if config.shared_codec else count
        # how a batch with mixed hallucinators is composed: "auto" (grouped convolutions off CPU, else one call
        # per hallucinator: faster on CPU at N >= ~100), "grouped" or "loop"; not stored, same results
        self.grouped_mode = "auto"
        self.reset_parameters(generator)

    # ------------------------------------------------------------------ initialisation
    def reset_parameters(self, generator: torch.Generator | None = None, inputs: Tensor | None = None) -> None:
        """Initialise per ``config.init``; ``inputs`` (a sample of bases) sets the identity shift."""
        with torch.no_grad():
            self.sigma.fill_(1.0)
            self.mu.zero_()
        if self.config.init in ("identity", "pca"):
            self._init_identity(generator, inputs)
            return
        for k, (ci, _) in enumerate(self._enc_io):
            _uniform_(getattr(self, f"enc_w{k}"), ci * 9, generator)
            _uniform_(getattr(self, f"enc_b{k}"), ci * 9, generator)
        for k, (ci, _) in enumerate(self._dec_io):
            _uniform_(getattr(self, f"dec_w{k}"), ci * 9, generator)
            _uniform_(getattr(self, f"dec_b{k}"), ci * 9, generator)

    def set_output_shift(self, shifts: Tensor) -> None:
        """Make hallucinator j add ``shifts[j]`` (image-shaped) to its output, on top of its identity init.

        Requires ``padding="same"`` and an identity-initialised bank; the shift is written into μ (for
        depth 0 directly, otherwise through the decoder's identity path).
        """
        if self.config.padding != "same":
            raise ConfigError("data-driven hallucinator init needs padding='same'")
        if shifts.shape != (self.count, self.out_channels, *self.size):
            raise ValueError(f"shifts must have shape {(self.count, self.out_channels, *self.size)}")
        feat = self.feature_channels
        with torch.no_grad():
            if tuple(self.mu.shape[-2:]) != tuple(shifts.shape[-2:]):
                shifts = F.interpolate(shifts.float(), size=self.mu.shape[-2:], mode="area")
            mu = torch.zeros_like(self.mu)
            for c in range(feat):
                mu[:, c] = shifts[:, c % self.out_channels].to(mu.device)
            if feat > self.out_channels:
                # several feature channels feed one output channel: split the shift among them
                counts = torch.tensor([len(range(o, feat, self.out_channels)) for o in range(self.out_channels)])
                for c in range(feat):
                    mu[:, c] /= float(counts[c % self.out_channels])
            self.mu.copy_(mu)

    def _init_identity(self, generator: torch.Generator | None, inputs: Tensor | None) -> None:
        # Identity kernels; with ReLU, a positive bias shift keeps (almost) every input value alive
        # through the encoder and is removed again by the decoder's last bias.
        relu = self.config.activation == "relu" and self.config.depth > 0
        shift = 0.0
        if relu:
            low = float(inputs.min()) if inputs is not None and inputs.numel() else -3.0
            shift = max(0.0, -low) + 0.5
        transposed = self.config.padding == "valid"
        noise = self.config.init_noise
        with torch.no_grad():
            for prefix, io in (("enc", self._enc_io), ("dec", self._dec_io)):
                for k, (ci, co) in enumerate(io):
                    w = getattr(self, f"{prefix}_w{k}")
                    b = getattr(self, f"{prefix}_b{k}")
                    w.zero_()
                    b.zero_()
                    for c in range(min(ci, co)):
                        if transposed and prefix == "dec":
                            w[:, c, c, 1, 1] = 1.0
                        else:
                            w[:, c, c, 1, 1] = 1.0
                    if ci < co:  # extra output channels copy input channels cyclically
                        for c in range(ci, co):
                            if transposed and prefix == "dec":
                                w[:, c % ci, c, 1, 1] = 1.0
                            else:
                                w[:, c, c % ci, 1, 1] = 1.0
                    elif ci > co:  # fold extra input channels by averaging
                        w.zero_()
                        for c in range(ci):
                            val = 1.0 / math.ceil(ci / co)
                            if transposed and prefix == "dec":
                                w[:, c, c % co, 1, 1] = val
                            else:
                                w[:, c % co, c, 1, 1] = val
                    if noise > 0:
                        w.add_(torch.randn(w.shape, generator=generator) * noise)
            if relu:
                self.enc_b0.fill_(shift)
                last = getattr(self, f"dec_b{self.config.depth - 1}")
                # the decoder's last layer sums ~one shifted channel per output channel
                w_last = getattr(self, f"dec_w{self.config.depth - 1}")
                gain = w_last.sum(dim=(1, 3, 4) if transposed else (2, 3, 4))  # (count, co)
                last.copy_(-shift * gain)

    # ------------------------------------------------------------------ forward
    def _act(self, x: Tensor) -> Tensor:
        return F.relu(x) if self.config.activation == "relu" else x

    def _decode(self, x: Tensor, jc, conv: Callable[..., Tensor]) -> Tensor:
        """The decoder after σ·x + μ, with decoder weights ``[jc]`` applied by ``conv(x, w, b, transposed, **kw)``."""
        depth = self.config.depth
        for k in range(depth):
            w, b = getattr(self, f"dec_w{k}")[jc], getattr(self, f"dec_b{k}")[jc]
            if self.config.pyramid and k < depth - 1:
                x = F.interpolate(x, size=self._level_sizes[depth - 2 - k], mode="bilinear", align_corners=False)
            x = conv(x, w, b, True) if self.config.padding == "valid" else conv(x, w, b, False, padding=1)
            if k < depth - 1:
                x = self._act(x)
        return x

    def single(self, x: Tensor, j: int) -> Tensor:
        """Run hallucinator ``j`` on a batch ``x`` (N, c', h', w')."""
        pad = 1 if self.config.padding == "same" else 0
        depth, pyramid = self.config.depth, self.config.pyramid
        jc = 0 if self.config.shared_codec else j  # the encoder/decoder's index
        for k in range(depth):
            x = self._act(F.conv2d(x, getattr(self, f"enc_w{k}")[jc], getattr(self, f"enc_b{k}")[jc], padding=pad,
                                   stride=2 if pyramid and k > 0 else 1))
        sigma, mu = self.sigma[j], self.mu[j]
        if tuple(sigma.shape[-2:]) != tuple(x.shape[-2:]):
            both = F.interpolate(torch.stack([sigma, mu]), size=x.shape[-2:], mode="bilinear", align_corners=False)
            sigma, mu = both[0], both[1]
        return self._decode(sigma * x + mu, jc, _dense_conv)

    def grouped(self, x: Tensor, index: Tensor) -> Tensor:
        """Compose ``x[i]`` with hallucinator ``index[i]`` in one grouped convolution per layer (groups = N).

        Same result as :meth:`single` per group (within float tolerance) with no Python loop and no host
        synchronisation; on CPU it only wins for small batches (BENCHMARKS.md, speed section)."""
        n = x.shape[0]
        pad = 1 if self.config.padding == "same" else 0
        depth, pyramid = self.config.depth, self.config.pyramid
        jc = torch.zeros_like(index) if self.config.shared_codec else index

        def conv(x: Tensor, w: Tensor, b: Tensor, transposed: bool, **kw) -> Tensor:
            flat = x.reshape(1, n * x.shape[1], *x.shape[-2:])
            fn = F.conv_transpose2d if transposed else F.conv2d
            y = fn(flat, w.reshape(n * w.shape[1], *w.shape[2:]), b.reshape(-1), groups=n, **kw)
            return y.view(n, -1, *y.shape[-2:])

        for k in range(depth):
            x = self._act(conv(x, getattr(self, f"enc_w{k}")[jc], getattr(self, f"enc_b{k}")[jc], False,
                               padding=pad, stride=2 if pyramid and k > 0 else 1))
        sigma, mu = self.sigma[index], self.mu[index]
        if tuple(sigma.shape[-2:]) != tuple(x.shape[-2:]):
            both = F.interpolate(torch.cat([sigma, mu]), size=x.shape[-2:], mode="bilinear", align_corners=False)
            sigma, mu = both[:n], both[n:]
        return self._decode(sigma * x + mu, jc, conv)

    def forward(self, x: Tensor, index: Tensor | int) -> Tensor:
        """Compose ``x[i]`` with hallucinator ``index[i]`` (a tensor, or one int for the whole batch)."""
        out = self._compose(x, index)
        return match_stats(out, x) if self.config.match_stats else out

    def _compose(self, x: Tensor, index: Tensor | int) -> Tensor:
        if isinstance(index, int):
            return self.single(x, index)
        index = index.to(device=x.device, dtype=torch.long)
        if index.shape != (x.shape[0],):
            raise ValueError(f"index must have shape ({x.shape[0]},), got {tuple(index.shape)}")
        if x.shape[0] == 0:
            return x.new_zeros((0, self.out_channels, *self.size))
        mode = self.grouped_mode
        if mode == "grouped" or (mode == "auto" and x.device.type != "cpu"):
            return self.grouped(x, index)
        return self._by_hallucinator(x, index)

    def _by_hallucinator(self, x: Tensor, index: Tensor) -> Tensor:
        """One :meth:`single` call per distinct hallucinator in ``index`` (the CPU path)."""
        order = torch.argsort(index, stable=True)
        sorted_idx = index[order]
        uniq, counts = torch.unique_consecutive(sorted_idx, return_counts=True)
        pieces = torch.split(x[order], counts.tolist())
        out = torch.cat([self.single(p, int(j)) for p, j in zip(pieces, uniq.tolist())])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return out[inverse]

    def parameter_count_each(self) -> int:
        """Stored numbers of ONE hallucinator (its σ/μ plus the encoder/decoder, shared or not)."""
        return sum(p[0].numel() for p in self.parameters())

    def affine_parameters(self) -> list[nn.Parameter]:
        return [self.sigma, self.mu]

    def conv_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n not in ("sigma", "mu")]


def match_stats(out: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """``out`` re-standardised, image by image, to the mean and std (over all its pixels) of ``reference``."""
    if out.shape[0] == 0:
        return out
    o, r = out.flatten(1), reference.flatten(1)
    o_mean, o_std = o.mean(1, keepdim=True), o.std(1, keepdim=True)
    r_mean, r_std = r.mean(1, keepdim=True), r.std(1, keepdim=True)
    return ((o - o_mean) / (o_std + eps) * r_std + r_mean).view_as(out)


def affine_size(feature_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Height and width at which σ and μ are stored."""
    return (max(1, -(-feature_size[0] // stride)), max(1, -(-feature_size[1] // stride)))


def within_class_directions(images: Tensor, labels: Tensor, k: int, max_samples: int = 4000,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Top-``k`` principal directions of within-class variation (x − class mean), pooled over classes.

    Returns (directions (k, C, H, W) of unit norm, standard deviations (k,)). Used by the "pca" init.
    """
    n = images.shape[0]
    if n > max_samples:
        pick = torch.randperm(n, generator=generator)[:max_samples].to(images.device)
        images, labels = images[pick], labels[pick]
    x = images.flatten(1).float()
    resid = torch.empty_like(x)
    for c in labels.unique():
        m = labels == c
        resid[m] = x[m] - x[m].mean(0, keepdim=True)
    k_eff = min(k, resid.shape[0], resid.shape[1])
    _, s, v = torch.linalg.svd(resid.cpu(), full_matrices=False)
    dirs = v[:k_eff]
    std = s[:k_eff] / max(1.0, (resid.shape[0] - 1) ** 0.5)
    if k_eff < k:
        dirs = torch.cat([dirs, dirs[: k - k_eff]]) if k_eff else torch.zeros(k, x.shape[1])
        std = torch.cat([std, std[: k - k_eff]]) if k_eff else torch.zeros(k)
    return dirs.view(k, *images.shape[1:]), std


def pca_shifts(images: Tensor, labels: Tensor, count: int, scale: float,
               generator: torch.Generator | None = None) -> Tensor:
    """Shifts for ``count`` hallucinators: ±scale·std along principal directions 1, 1, 2, 2, … ."""
    dirs, std = within_class_directions(images, labels, (count + 1) // 2, generator=generator)
    shifts = []
    for j in range(count):
        sign = 1.0 if j % 2 == 0 else -1.0
        shifts.append(sign * scale * std[j // 2] * dirs[j // 2])
    return torch.stack(shifts)


def hallucinator_parameter_count(in_channels: int, out_channels: int, size: tuple[int, int],
                                 config: HallucinatorConfig) -> int:
    """Stored numbers of one hallucinator, computed without building it."""
    config.validate()
    affine, codec = _affine_and_codec(in_channels, out_channels, size, config)
    return affine + codec


def _affine_and_codec(in_channels: int, out_channels: int, size: tuple[int, int],
                      config: HallucinatorConfig) -> tuple[int, int]:
    plan = _layers(in_channels, out_channels, (int(size[0]), int(size[1])), config)
    ah, aw = affine_size(plan.level_sizes[-1], config.affine_stride)
    return 2 * plan.feature_channels * ah * aw, sum(ci * co * 9 + co for ci, co in plan.enc_io + plan.dec_io)


def bank_parameter_count(count: int, in_channels: int, out_channels: int, size: tuple[int, int],
                         config: HallucinatorConfig) -> int:
    """Stored numbers of ``count`` hallucinators (the encoder/decoder once with ``shared_codec``)."""
    if count <= 0:
        return 0
    config.validate()
    affine, codec = _affine_and_codec(in_channels, out_channels, size, config)
    return count * affine + (codec if config.shared_codec else count * codec)


def _dense_conv(x: Tensor, w: Tensor, b: Tensor, transposed: bool, **kw) -> Tensor:
    """One hallucinator's (de)convolution: ``conv_transpose2d`` when ``transposed``, else ``conv2d``."""
    return (F.conv_transpose2d if transposed else F.conv2d)(x, w, b, **kw)
