"""Image folders as THINGS lays them out, and text prompts from their concept names.

THINGS-EEG2 ships ``training_images/NNNNN_concept/*.jpg`` (1654 folders x 10 images) and
``test_images/NNNNN_concept/*.jpg`` (200 x 1). The EEG conditions follow the *sorted* folder
names and, inside each folder, the sorted file names (this is the order ATM and the original
THINGS-EEG2 code assume). The concept name is the folder name after the first ``_``, kept as it
is (``aircraft_carrier``, ``baton4``), which is how ATM builds its prompts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_PROMPT_TEMPLATE", "IMAGE_EXTENSIONS", "ImageSet", "concept_from_folder", "make_prompts",
           "scan_image_folder"]

#: ATM's prompt ("This picture is aircraft_carrier").
DEFAULT_PROMPT_TEMPLATE = "This picture is {concept}"
#: File name endings recognised as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def concept_from_folder(folder: str) -> str:
    """Concept name of a THINGS folder: the part after the first ``_`` (``00001_aircraft_carrier``
    → ``aircraft_carrier``); a folder without ``_`` is its own name."""
    head, sep, tail = folder.partition("_")
    return tail if sep and tail else folder


@dataclass(frozen=True)
class ImageSet:
    """The images of one split, in EEG condition order.

    Attributes
    ----------
    root : Path
        The folder that was scanned.
    paths : list of Path
        One path per image (= per EEG condition), sorted folders then sorted files.
    folders : list of str
        The concept folders, sorted (one per concept).
    concepts : list of str
        Concept name of each folder (folder name after the first ``_``).
    concept_index : numpy.ndarray of int64
        For each image, the index of its folder in ``folders``.
    image_index : numpy.ndarray of int64
        For each image, its position inside its folder.
    """

    root: Path
    paths: list[Path]
    folders: list[str]
    concepts: list[str]
    concept_index: np.ndarray = field(repr=False)
    image_index: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def counts(self) -> np.ndarray:
        """Number of images in each concept folder."""
        return np.bincount(self.concept_index, minlength=len(self.folders))


def _is_image(entry: os.DirEntry) -> bool:
    return (not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_EXTENSIONS)
            and entry.is_file())


def scan_image_folder(root: str | os.PathLike) -> ImageSet:
    """List the images under ``root/<concept folder>/`` in EEG condition order.

    Parameters
    ----------
    root : str or PathLike
        A folder of concept sub-folders, e.g. ``.../training_images``.

    Returns
    -------
    ImageSet
        Paths, concept names and, per image, its concept index and position in the concept.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder.
    ValueError
        ``root`` holds no concept folder with images, or a concept folder holds no image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {root} does not exist. Expected a folder of concept sub-folders such as "
            "training_images/00001_aardvark/aardvark_01b.jpg."
        )
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        loose = [e.name for e in os.scandir(root) if _is_image(e)]
        hint = (f" It holds {len(loose)} images directly; put them in one sub-folder per concept "
                "(NNNNN_concept/).") if loose else ""
        raise ValueError(f"Image folder {root} has no concept sub-folders.{hint}")
    paths: list[Path] = []
    concept_index: list[int] = []
    image_index: list[int] = []
    empty: list[str] = []
    for ci, folder in enumerate(folders):
        files = sorted(e.name for e in os.scandir(root / folder) if _is_image(e))
        if not files:
            empty.append(folder)
        paths.extend(root / folder / name for name in files)
        concept_index.extend([ci] * len(files))
        image_index.extend(range(len(files)))
    if empty:
        raise ValueError(
            f"{len(empty)} concept folder(s) under {root} hold no image ({', '.join(empty[:5])}"
            f"{', ...' if len(empty) > 5 else ''}); accepted endings: {', '.join(IMAGE_EXTENSIONS)}."
        )
    return ImageSet(
        root=root,
        paths=paths,
        folders=folders,
        concepts=[concept_from_folder(f) for f in folders],
        concept_index=np.asarray(concept_index, dtype=np.int64),
        image_index=np.asarray(image_index, dtype=np.int64),
    )


def make_prompts(concepts: list[str] | tuple[str, ...], template: str = DEFAULT_PROMPT_TEMPLATE) -> list[str]:
    """One text prompt per concept, ``template.format(concept=name)``.

    Parameters
    ----------
    concepts : sequence of str
        Concept names (e.g. :attr:`ImageSet.concepts`).
    template : str
        A format string containing ``{concept}``; ATM's default is ``"This picture is {concept}"``.

    Raises
    ------
    ValueError
        ``template`` has no ``{concept}`` field or other, unknown fields.
    """
    if "{concept}" not in template:
        raise ValueError(
            f"Prompt template {template!r} has no '{{concept}}' placeholder; e.g. 'A photo of a {{concept}}'."
        )
    try:
        return [template.format(concept=c) for c in concepts]
    except (KeyError, IndexError) as exc:
        raise ValueError(
            f"Prompt template {template!r} uses an unknown field {exc}; only '{{concept}}' is filled in."
        ) from None
