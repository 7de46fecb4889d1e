"""A THINGS-EEG2 download read in place as a store (:func:`open_things_eeg2`): memory maps over the pickles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eegvision.checks import check_list, check_name, check_names
from eegvision.readers.channels import THINGS_EEG2_CHANNELS
from eegvision.readers.images import (
    DEFAULT_PROMPT_TEMPLATE,
    ImageSet,
    scan_image_folder,
)
from eegvision.readers.subjects import normalize_subject
from eegvision.readers.things_eeg2 import (
    FILE_NAME,
    PREPROCESSED_DIR,
    SPLITS,
    PreprocessedFile,
    _check_images,
    _condition_concepts,
    images_per_concept,
    open_preprocessed,
    things_eeg2_concepts,
    things_eeg2_metadata,
)
from eegvision.store.base import Store

__all__ = ["ThingsEEG2Folder", "open_things_eeg2"]

# ---------------------------------------------------------------------------------------------
# The whole download, in place


class ThingsEEG2Folder(Store):
    """A THINGS-EEG2 download read in place (use :func:`open_things_eeg2`).

    Arrays are memory maps over the original pickles (float64, read-only); nothing is copied.
    """

    dataset = "things-eeg2"

    def __init__(self, root: Path, files: dict[str, dict[str, Path]], image_roots: dict[str, Path | None],
                 prompt_template: str, expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS) -> None:
        self.root = root
        self.expected_channels = expected_channels
        self.path = root
        self._files = files
        self.image_roots = image_roots
        self.prompt_template = prompt_template
        self._open: dict[tuple[str, str], PreprocessedFile] = {}
        self._imagesets: dict[str, ImageSet] = {}
        first = self.file(*next((s, sp) for s in self.subjects for sp in self.splits(s)))
        self.ch_names = first.ch_names
        self.times = first.times
        self.sfreq = first.sfreq
        self.ch_types = ["eeg"] * len(self.ch_names)

    def __repr__(self) -> str:
        return f"ThingsEEG2Folder({str(self.root)!r}, subjects={self.subjects})"

    @property
    def subjects(self) -> list[str]:
        return sorted(self._files)

    def splits(self, subject: str) -> list[str]:
        subject = check_name("Subject", normalize_subject(subject), self.subjects, str(self.root / PREPROCESSED_DIR))
        return [s for s in SPLITS if s in self._files[subject]]

    def file(self, subject: str, split: str) -> PreprocessedFile:
        """The opened (validated, memory-mapped) pickle of ``subject``/``split``."""
        subject = self._check(subject, split)
        key = (subject, split)
        if key not in self._open:
            pf = open_preprocessed(self._files[subject][split], expected_channels=self.expected_channels)
            if self._open:
                ref = next(iter(self._open.values()))
                if pf.ch_names != ref.ch_names or pf.times.shape != ref.times.shape \
                        or not np.allclose(pf.times, ref.times) or pf.sfreq != ref.sfreq:
                    raise ValueError(f"{pf.path}: channels, times or sfreq differ from {ref.path}; all files of "
                                     "a dataset must share them.")
            self._open[key] = pf
        return self._open[key]

    def array(self, subject: str, split: str) -> np.ndarray:
        return self.file(subject, split).data

    def image_set(self, split: str) -> ImageSet | None:
        root = self.image_roots.get(split)
        if root is None:
            return None
        if split not in self._imagesets:
            self._imagesets[split] = scan_image_folder(root)
        return self._imagesets[split]

    def metadata(self, subject: str, split: str) -> pd.DataFrame:
        subject = self._check(subject, split)
        pf = self.file(subject, split)
        per_condition = things_eeg2_metadata(subject, split, pf.n_conditions, self.image_set(split))
        n_rep = pf.n_repetitions
        meta = per_condition.loc[per_condition.index.repeat(n_rep)].reset_index(drop=True)
        meta.insert(0, "subject", subject)
        meta.insert(1, "split", split)
        meta.insert(3, "repetition", np.tile(np.arange(n_rep, dtype=np.int64), pf.n_conditions))
        return meta

    def _n_conditions(self, split: str) -> int:
        for sub in self.subjects:
            if split in self._files[sub]:
                return self.file(sub, split).n_conditions
        raise ValueError(f"No subject in {self.root} has a {split} file.")

    def concepts(self, split: str) -> list[str]:
        n_cond = self._n_conditions(split)
        images = self.image_set(split)
        per = (_check_images(images, split, n_cond, f"{self.root} {split}") if images is not None
               else images_per_concept(split, n_cond))
        n_concepts = int(_condition_concepts(split, n_cond, per)[0][-1]) + 1 if n_cond else 0
        names = images.concepts if images is not None else things_eeg2_concepts(split)
        return list(names[:n_concepts])

    def images(self, split: str) -> list[str] | None:
        images = self.image_set(split)
        if images is None:
            return None
        _check_images(images, split, self._n_conditions(split), f"{self.root} {split}")
        return [str(p) for p in images.paths]


def _find_preprocessed_root(folder: Path) -> Path:
    if (folder / PREPROCESSED_DIR).is_dir():
        return folder / PREPROCESSED_DIR
    if any(folder.glob(f"sub-*/{FILE_NAME.format(split='*')}")):
        return folder  # the user pointed at Preprocessed_data_250Hz itself
    raise FileNotFoundError(
        f"{folder} holds no {PREPROCESSED_DIR}/sub-XX/preprocessed_eeg_{{training,test}}.npy. Point at the "
        f"folder that contains {PREPROCESSED_DIR}/ (as downloaded from OSF or Hugging Face)."
    )


def open_things_eeg2(
    folder: str | os.PathLike,
    images: str | os.PathLike | None = None,
    subjects: Sequence[str | int] | None = None,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    *,
    with_images: bool = True,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
) -> ThingsEEG2Folder:
    """Read a THINGS-EEG2 download in place, with the same interface as an eegvision store.

    Parameters
    ----------
    folder : str or PathLike
        The folder holding ``Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy``
        (or that folder itself).
    images : str or PathLike, optional
        The folder holding ``training_images/`` and ``test_images/``; by default ``folder``'s, when
        they exist.
    subjects : sequence of str or int, optional
        Subjects to expose (``["sub-01", "sub-02"]`` or ``[1, 2]``); all by default.
    prompt_template : str
        Text prompt template (kept for conversion and feature extraction).
    with_images : bool
        False to ignore the images (concept names then come from eegvision's THINGS tables).
    expected_channels : tuple of str or None
        Channel names every file must hold, in order: the 63 THINGS-EEG2 channels by default; None accepts any
        set shared by all files (e.g. the 271 sensors of eegvision's MEG-shaped simulator family).

    Raises
    ------
    FileNotFoundError
        No preprocessed files, or an image folder that does not exist.
    ValueError
        A requested subject does not exist (close names are suggested), or ``images`` is given
        with ``with_images=False``.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"THINGS-EEG2 folder {folder} does not exist.")
    pre = _find_preprocessed_root(folder)
    files: dict[str, dict[str, Path]] = {}
    for sub_dir in sorted(p for p in pre.glob("sub-*") if p.is_dir()):
        found = {s: sub_dir / FILE_NAME.format(split=s) for s in SPLITS
                 if (sub_dir / FILE_NAME.format(split=s)).is_file()}
        if found:
            files[sub_dir.name] = found
    if not files:
        raise FileNotFoundError(f"{pre} holds no sub-XX/preprocessed_eeg_{{training,test}}.npy files.")
    if subjects is not None:
        wanted = [normalize_subject(s) for s in check_list("subjects", subjects, "['sub-01', 'sub-02']")]
        files = {s: files[s] for s in check_names("Subject", wanted, sorted(files), str(pre))}
    return ThingsEEG2Folder(folder, files, _image_roots(folder, images, with_images), prompt_template,
                            expected_channels)


def _image_roots(folder: Path, images: str | os.PathLike | None, with_images: bool) -> dict[str, Path | None]:
    """``{split: image folder or None}``: ``images/{split}_images`` (``folder``'s by default)."""
    if not with_images:
        if images is not None:
            raise ValueError(f"images={str(images)!r} and with_images=False contradict each other; "
                             "give one of them.")
        return {s: None for s in SPLITS}
    base = folder if images is None else Path(images).expanduser()
    if images is not None and not base.is_dir():
        raise FileNotFoundError(f"Image folder {base} does not exist.")
    roots = {s: (base / f"{s}_images" if (base / f"{s}_images").is_dir() else None) for s in SPLITS}
    if images is not None and not any(roots.values()):
        raise FileNotFoundError(
            f"{base} holds neither training_images/ nor test_images/; point --images at the folder that "
            "contains them."
        )
    return roots
