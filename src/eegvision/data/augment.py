"""Seeded augmentations of training batches: time shift, channel dropout, amplitude scaling, additive noise.

:class:`Augment` transforms a batch ``(batch, n_chans, n_times)`` of training EEG; the trainer applies it to
training batches only (never to validation or test data). With every option at its default it is the identity.
Each augmentation draws from its own ``torch.Generator`` seeded from ``(seed, epoch, batch index, rank,
augmentation)``, so the draws are a deterministic function of the seed and the position of the batch: the same
under any number of data-loader workers, the same when a run is resumed, and one augmentation's draws do not
change when another is switched on. The steps, in order:

1. **time shift** (``time_shift = m`` samples): each sample moves by ``k ~ uniform{-m, ..., m}`` samples
   (positive ``k``: later). The shift is *zero-padded*, not circular: the ``|k|`` samples shifted out at one end
   are dropped, the ``|k|`` samples vacated at the other end are 0.
2. **amplitude scaling** (``amplitude_scale = s``): each sample is multiplied by ``exp(s * z)``, ``z ~ N(0, 1)``
   (a log-normal factor of median 1).
3. **channel dropout** (``channel_dropout = p``): each channel of each sample is set to 0 with probability ``p``
   (no rescaling of the kept channels).
4. **additive noise** (``noise = a``): ``a * sd * z`` is added, ``z ~ N(0, 1)`` per value, where ``sd`` is the
   standard deviation of all values of the batch as it arrived (before steps 1-3).

Repetition mixing, the fifth augmentation of a fit (``FitConfig.mix_repetitions``), changes which samples a batch
holds rather than their values and lives with the dataset (:class:`eegvision.data.mixing.RepetitionMix`).

>>> aug = Augment(time_shift=2, noise=0.1, seed=0)
>>> x = torch.ones(4, 3, 10)
>>> torch.equal(aug(x, epoch=0, batch=5), aug(x, epoch=0, batch=5))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eegvision.checks import check_int, check_range

__all__ = ["AUGMENTATIONS", "Augment", "drop_channels", "scale_amplitude", "shift_time"]

#: The augmentations in the order they are applied (also the index of each one's random stream).
AUGMENTATIONS = ("time_shift", "amplitude_scale", "channel_dropout", "noise")


def shift_time(eeg: Tensor, shifts: Tensor) -> Tensor:
    """``eeg`` (batch, chans, times) with sample ``i`` moved ``shifts[i]`` samples later (earlier when negative),
    zero-padded: ``out[i, :, t] = eeg[i, :, t - shifts[i]]`` where that index exists, else 0."""
    n_times = eeg.shape[-1]
    source = torch.arange(n_times, device=eeg.device)[None, :] - shifts.to(eeg.device)[:, None]  # (batch, times)
    valid = (source >= 0) & (source < n_times)
    index = source.clamp(0, n_times - 1)[:, None, :].expand(-1, eeg.shape[1], -1)
    return torch.gather(eeg, 2, index) * valid[:, None, :].to(eeg.dtype)


def scale_amplitude(eeg: Tensor, factors: Tensor) -> Tensor:
    """``eeg`` with sample ``i`` multiplied by ``factors[i]``."""
    return eeg * factors.to(eeg.device, eeg.dtype)[:, None, None]


def drop_channels(eeg: Tensor, keep: Tensor) -> Tensor:
    """``eeg`` with channel ``c`` of sample ``i`` set to 0 where ``keep[i, c]`` is False."""
    return eeg * keep.to(eeg.device, eeg.dtype)[:, :, None]


@dataclass(frozen=True)
class Augment:
    """The augmentations of training batches (see the module docstring for what each one does).

    Parameters
    ----------
    time_shift : int
        Largest shift in samples (zero-padded); 0: off.
    amplitude_scale : float
        Standard deviation of the log of the per-sample amplitude factor; 0: off.
    channel_dropout : float
        Probability that a channel of a sample is zeroed, in [0, 1); 0: off.
    noise : float
        Standard deviation of the added Gaussian noise, relative to the batch's standard deviation; 0: off.
    seed : int
        Seed of every draw (with the epoch, batch index and rank).
    """

    time_shift: int = 0
    amplitude_scale: float = 0.0
    channel_dropout: float = 0.0
    noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("time_shift", self.time_shift, minimum=0, hint="It is the largest shift in samples (0: off).")
        check_range("amplitude_scale", self.amplitude_scale, 0.0, float("inf"),
                    hint="It is the standard deviation of the log amplitude factor (0: off).")
        check_range("channel_dropout", self.channel_dropout, 0.0, 1.0,
                    hint="It is the probability of zeroing a channel (0: off).")
        check_range("noise", self.noise, 0.0, float("inf"),
                    hint="It is the noise standard deviation relative to the batch's (0: off).")

    @property
    def active(self) -> bool:
        """Whether any augmentation is on (else :meth:`__call__` returns its input)."""
        return bool(self.time_shift or self.amplitude_scale or self.channel_dropout or self.noise)

    def generator(self, which: str, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
        """The CPU generator of augmentation ``which`` for one batch."""
        entropy = [int(self.seed), int(epoch), int(batch), int(rank), AUGMENTATIONS.index(which)]
        state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)

    def draws(self, shape: tuple[int, int, int], *, epoch: int, batch: int, rank: int = 0) -> dict[str, Tensor]:
        """The random values a batch of ``shape`` gets (CPU tensors; only those of the augmentations that are on):
        ``shifts`` (batch,) int64, ``factors`` (batch,), ``keep`` (batch, chans) bool, ``z`` (batch, chans, times)."""
        n, c, t = (int(v) for v in shape)
        out: dict[str, Tensor] = {}
        if self.time_shift:
            g = self.generator("time_shift", epoch, batch, rank)
            out["shifts"] = torch.randint(-self.time_shift, self.time_shift + 1, (n,), generator=g)
        if self.amplitude_scale:
            g = self.generator("amplitude_scale", epoch, batch, rank)
            out["factors"] = torch.exp(self.amplitude_scale * torch.randn(n, generator=g))
        if self.channel_dropout:
            g = self.generator("channel_dropout", epoch, batch, rank)
            out["keep"] = torch.rand(n, c, generator=g) >= self.channel_dropout
        if self.noise:
            g = self.generator("noise", epoch, batch, rank)
            out["z"] = torch.randn(n, c, t, generator=g)
        return out

    def __call__(self, eeg: Tensor, *, epoch: int, batch: int, rank: int = 0) -> Tensor:
        """The augmented batch (``eeg`` itself when no augmentation is on)."""
        if not self.active:
            return eeg
        if self.time_shift >= eeg.shape[-1]:
            raise ValueError(f"time_shift={self.time_shift} samples is not shorter than the epochs "
                             f"({eeg.shape[-1]} samples); choose a shift below {eeg.shape[-1]}.")
        d = self.draws(tuple(eeg.shape), epoch=epoch, batch=batch, rank=rank)
        sd = eeg.detach().float().std(unbiased=False) if self.noise else None
        out = eeg
        if "shifts" in d:
            out = shift_time(out, d["shifts"])
        if "factors" in d:
            out = scale_amplitude(out, d["factors"])
        if "keep" in d:
            out = drop_channels(out, d["keep"])
        if "z" in d:
            out = out + (self.noise * sd).to(out.dtype) * d["z"].to(out.device, out.dtype)
        return out
