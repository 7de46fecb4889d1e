"""eegvision.models: EEG/MEG encoders (and, from other modules, vision features and priors).

>>> from eegvision.models import create_encoder, list_models
>>> enc = create_encoder("atms", n_chans=63, n_times=250, n_outputs=1024)
"""

from eegvision.models.encoders import (
    ATMS50Encoder,
    ATMSEncoder,
    BraindecodeEncoder,
    EEGEncoder,
    EEGProjectEncoder,
    LinearEncoder,
    NICEEncoder,
    ProjectorEncoder,
    load_reference_state_dict,
)
from eegvision.models.reference import load_reference_checkpoint
from eegvision.models.registry import (
    create_encoder,
    describe,
    list_models,
    load_encoder,
    save_pretrained,
)

__all__ = [
    "ATMS50Encoder",
    "ATMSEncoder",
    "BraindecodeEncoder",
    "EEGEncoder",
    "EEGProjectEncoder",
    "LinearEncoder",
    "NICEEncoder",
    "ProjectorEncoder",
    "create_encoder",
    "describe",
    "list_models",
    "load_encoder",
    "load_reference_checkpoint",
    "load_reference_state_dict",
    "save_pretrained",
]
