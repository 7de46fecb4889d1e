"""Named sizes of the simulated dataset: ``tiny`` (tests), ``demo``, ``things`` (full THINGS size) and ``bench``
(the ``eegvision`` simulator family's default size, ``docs/families.md``: one subject, 400 × 5 training images
× 4 repetitions, 200 test images × **1** repetition — the current model's single trials already allow 0.8
200-way top-1 to its known-model decoder, so more test repetitions would saturate it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from eegvision.checks import check_name


@dataclass(frozen=True)
class Preset:
    """Counts of a simulated dataset.

    ``n_sessions`` sessions per subject: each test condition is shown ``test_reps // n_sessions``
    times per session; each training condition appears in half of the sessions (all when there is
    one) with ``train_reps_per_session`` repetitions, as in THINGS-EEG2 (4 sessions, 20 and 2).
    """

    name: str
    n_subjects: int
    n_train_concepts: int
    n_train_images: int
    train_reps: int
    n_test_concepts: int
    test_reps: int
    n_sessions: int
    feature_dim: int
    image_size: int = 64
    write_raw: bool = True

    @property
    def n_train(self) -> int:
        return self.n_train_concepts * self.n_train_images

    @property
    def train_sessions_per_condition(self) -> int:
        return max(1, self.n_sessions // 2)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.n_subjects < 1:
            raise ValueError(f"Preset {self.name!r}: n_subjects must be >= 1, got {self.n_subjects}.")
        if self.test_reps % self.n_sessions:
            raise ValueError(f"Preset {self.name!r}: test_reps ({self.test_reps}) must be a multiple of "
                             f"n_sessions ({self.n_sessions}).")
        if self.train_reps % self.train_sessions_per_condition:
            raise ValueError(f"Preset {self.name!r}: train_reps ({self.train_reps}) must be a multiple of "
                             f"{self.train_sessions_per_condition} (sessions holding each training image).")


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", n_subjects=2, n_train_concepts=20, n_train_images=2, train_reps=2,
                   n_test_concepts=10, test_reps=4, n_sessions=2, feature_dim=64),
    "demo": Preset("demo", n_subjects=2, n_train_concepts=1000, n_train_images=4, train_reps=4,
                   n_test_concepts=200, test_reps=20, n_sessions=4, feature_dim=256),
    "things": Preset("things", n_subjects=1, n_train_concepts=1654, n_train_images=10, train_reps=4,
                     n_test_concepts=200, test_reps=80, n_sessions=4, feature_dim=1024, write_raw=False),
    "bench": Preset("bench", n_subjects=1, n_train_concepts=400, n_train_images=5, train_reps=4,
                    n_test_concepts=200, test_reps=1, n_sessions=1, feature_dim=768, write_raw=False),
}


def get_preset(name: str, **overrides) -> Preset:
    """The preset called ``name`` with some fields replaced (``None`` values are ignored)."""
    check_name("Preset", name, PRESETS, "the simulator presets")
    preset = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    preset.validate()
    return preset
