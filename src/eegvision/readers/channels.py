"""Channel orders and region presets for THINGS-EEG2 (10-20 extended montage).

The 63-channel order is the one the THINGS-EEG2 preprocessing keeps with
``raw.pick(..., ordered=True)``; the preprocessed pickles store it in ``ch_names``.
Region presets are used for channel-subset training and the region analysis.
"""

from __future__ import annotations

from collections.abc import Sequence

from eegvision.checks import check_names

THINGS_EEG2_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "F2", "F4", "F6",
    "F8", "FT9", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T7",
    "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz",
    "CP2", "CP4", "CP6", "TP8", "TP10", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
    "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2",
)

#: The 17 parietal/occipital channels of NICE, UBP and NeuroBridge ("o+p").
OCCIPITO_PARIETAL_17: tuple[str, ...] = (
    "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
    "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2",
)

#: Coarse scalp regions of the 63-channel montage (ATM's brain-region ablation).
REGIONS: dict[str, tuple[str, ...]] = {
    "frontal": (
        "Fp1", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "F2", "F4",
        "F6", "F8", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6",
    ),
    "temporal": ("FT9", "FT7", "FT8", "FT10", "T7", "T8", "TP9", "TP7", "TP8", "TP10"),
    "central": ("C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6"),
    "parietal": ("P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8"),
    "occipital": ("O1", "Oz", "O2"),
    "occipito-parietal": OCCIPITO_PARIETAL_17,
}


def resolve_channels(spec: str | Sequence[str] | None, available: Sequence[str]) -> list[int]:
    """Indices into ``available`` for a region name, one channel name or a sequence of channel names.

    ``None`` or ``"all"`` selects every channel; text is a region of :data:`REGIONS` or one channel
    (it is never split on commas: pass several names as a list). Names match case-insensitively;
    unknown ones raise a ``ValueError`` that lists them and the closest available names.
    """
    available = list(available)
    if spec is None or (isinstance(spec, str) and spec.lower() == "all"):
        return list(range(len(available)))
    if isinstance(spec, str) and spec.lower() in REGIONS:
        names = [n for n in REGIONS[spec.lower()] if n in available]
        if not names:
            raise ValueError(
                f"Region {spec!r} has no channel in this recording (channels: "
                f"{', '.join(available[:8])}, ...). Pass channel names instead."
            )
        return [available.index(n) for n in names]
    names = [spec] if isinstance(spec, str) else list(spec)
    lower = {n.lower(): i for i, n in enumerate(available)}
    check_names("Channel", names, available, f"the recording's {len(available)} channels", ignore_case=True,
                hint=f"Regions: {', '.join(REGIONS)}.")
    return [lower[n.lower()] for n in names]
