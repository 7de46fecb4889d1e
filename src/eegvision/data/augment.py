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

__all__ = ["AUGMENTATIONS", "SMOOTHING_DEFAULTS", "Augment", "SmoothedTrials", "check_smoothing", "drop_channels",
           "moving_average", "scale_amplitude", "shift_time", "smooth_channels"]

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


# ----------------------------------------------------------------------------- NeuroBridge's EEG smoothing
#: The keys of ``FitConfig.eeg_smoothing`` and NeuroBridge's values (module/eeg_augmentation.py ``RandomSmooth``
#: as train.py builds it for ``--eeg_aug_type smooth``; ``--frozen_eeg_prior`` in its scripts).
SMOOTHING_DEFAULTS = {"kernel": 5, "channel_probability": 0.3, "frozen": True}


def check_smoothing(value: object) -> dict | None:
    """``FitConfig.eeg_smoothing`` checked and completed (missing keys take NeuroBridge's values); None: off."""
    from eegvision.checks import check_names

    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"eeg_smoothing is a dict such as {SMOOTHING_DEFAULTS} (or None: off); got {value!r}.")
    check_names("eeg_smoothing key", list(value), list(SMOOTHING_DEFAULTS), "eeg_smoothing")
    out = {**SMOOTHING_DEFAULTS, **value}
    check_int("eeg_smoothing kernel", out["kernel"], minimum=1,
              hint="It is the moving-average width in samples (NeuroBridge: 5).")
    check_range("eeg_smoothing channel_probability", out["channel_probability"], 0.0, 1.0, include_high=True,
                hint="It is the probability that a channel of a sample is smoothed (NeuroBridge: 0.3).")
    if not isinstance(out["frozen"], bool):
        raise ValueError(f"eeg_smoothing frozen is true (channels drawn once when the training data are loaded, "
                         f"NeuroBridge's --frozen_eeg_prior) or false (drawn anew each time a sample is read); got "
                         f"{out['frozen']!r}.")
    out["channel_probability"] = float(out["channel_probability"])
    return out


def moving_average(eeg: np.ndarray, kernel: int) -> np.ndarray:
    """The moving average along the last (time) axis as NeuroBridge's ``RandomSmooth`` computes it: value ``t`` is
    the mean of ``eeg[..., max(0, t - kernel // 2) : min(T, t + kernel // 2 + 1)]``, so the window shrinks at
    both ends (the first value is the mean of the first ``kernel // 2 + 1`` samples) and an even ``kernel``
    averages ``kernel + 1`` samples."""
    x = np.asarray(eeg, dtype=np.float64)
    n_times, half = x.shape[-1], int(kernel) // 2
    csum = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    t = np.arange(n_times)
    left, right = np.maximum(0, t - half), np.minimum(n_times, t + half + 1)
    return ((csum[..., right] - csum[..., left]) / (right - left)).astype(np.asarray(eeg).dtype, copy=False)


def smooth_channels(eeg: np.ndarray, mask: np.ndarray, kernel: int) -> np.ndarray:
    """A copy of ``eeg`` ``(batch, chans, times)`` whose channels ``mask`` ``(batch, chans)`` marks are replaced by
    their :func:`moving_average`."""
    out = np.array(eeg, dtype=np.float32, copy=True)
    rows, chans = np.nonzero(mask)
    if len(rows):
        out[rows, chans] = moving_average(out[rows, chans], kernel)
    return out


class SmoothedTrials:
    """A training dataset with NeuroBridge's EEG smoothing (``FitConfig.eeg_smoothing``); validation and test data
    are never wrapped.

    Each channel of each sample is smoothed (:func:`moving_average`, width ``kernel``) with probability
    ``channel_probability``. ``frozen`` (NeuroBridge's ``--frozen_eeg_prior``): the channels are drawn once, here,
    as NeuroBridge's ``EEGPreImageDataset`` draws them when it loads the training data: ``numpy.random`` seeded
    with ``seed`` (``RandomState``, the stream ``np.random.seed`` sets), one uniform draw per channel, in the order
    subject (as the dataset lists them), condition (every condition of the split, those held out for validation
    included, so a condition's draw does not depend on the split), sample of the condition (1 when averaged, else
    each repetition), channel; a channel is smoothed when its draw is below ``channel_probability``. Every epoch
    then reads the same smoothed data. Not ``frozen`` (NeuroBridge without the flag smooths in ``__getitem__``):
    each read draws anew, from a generator seeded by ``seed`` and the batch's sample indices, so an epoch sees a
    fresh draw per sample and a resumed run the same draws.
    """

    def __init__(self, data: object, kernel: int = 5, channel_probability: float = 0.3, frozen: bool = True,
                 seed: int = 0) -> None:
        check_smoothing({"kernel": kernel, "channel_probability": channel_probability, "frozen": frozen})
        if not hasattr(data, "fetch") or getattr(data, "group_size", None):
            raise ValueError(f"EEG smoothing wraps an EEGDataset of averaged or single trials; got {data!r}.")
        self.data, self.kernel, self.channel_probability = data, int(kernel), float(channel_probability)
        self.frozen, self.seed = bool(frozen), int(seed)
        self.mask = self._frozen_mask() if self.frozen else None

    def _frozen_mask(self) -> np.ndarray:
        """``(n_samples, n_chans)`` bool: which channels of each sample are smoothed (see the class docstring)."""
        d = self.data
        rng = np.random.RandomState(self.seed)
        mask = np.zeros((len(d), d.n_chans), dtype=bool)
        for s_pos, subject in enumerate(d.subjects):
            n_cond, n_rep = (int(v) for v in d.store.array(subject, d.split).shape[:2])
            per_cond = 1 if d.average else n_rep
            draws = rng.random_sample((n_cond, per_cond, d.n_chans)) < self.channel_probability
            rows = np.flatnonzero(d.subject_index == s_pos)
            reps = np.maximum(d.repetition_index[rows], 0)
            mask[rows] = draws[d.condition_index[rows], reps]
        return mask

    def draw(self, indices: np.ndarray) -> np.ndarray:
        """``(len(indices), n_chans)`` bool: the channels smoothed in samples ``indices``."""
        if self.mask is not None:
            return self.mask[indices]
        import zlib

        digest = zlib.crc32(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.seed, 0x5300, digest])
        return rng.random((len(indices), self.data.n_chans)) < self.channel_probability

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str) -> object:
        if name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def __repr__(self) -> str:
        mode = "frozen" if self.frozen else "redrawn per read"
        return (f"SmoothedTrials({self.data!r}, kernel={self.kernel}, channel_probability={self.channel_probability}"
                f", {mode}, seed={self.seed})")

    def get_batch(self, indices: object) -> dict[str, Tensor]:
        if isinstance(indices, Tensor):
            indices = indices.detach().cpu().numpy()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        batch = self.data.get_batch(idx)
        eeg = smooth_channels(batch["eeg"].float().numpy(), self.draw(idx), self.kernel)
        batch["eeg"] = torch.from_numpy(eeg).to(batch["eeg"].dtype)
        return batch

    def __getitem__(self, index: object) -> dict[str, Tensor]:
        if isinstance(index, (int, np.integer)):
            return {k: v[0] for k, v in self.get_batch(np.array([int(index)])).items()}
        return self.get_batch(index)
