"""EEG/MEG encoders: one file per architecture, shared blocks in :mod:`.layers`."""

from eegvision.models.encoders.atms import ATMSEncoder, load_reference_state_dict
from eegvision.models.encoders.atms50 import ATMS50Encoder
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.braindecode_head import BraindecodeEncoder
from eegvision.models.encoders.eegproject import EEGProjectEncoder
from eegvision.models.encoders.nice import NICEEncoder
from eegvision.models.encoders.projector import ProjectorEncoder

__all__ = [
    "ATMS50Encoder",
    "ATMSEncoder",
    "BraindecodeEncoder",
    "EEGEncoder",
    "EEGProjectEncoder",
    "NICEEncoder",
    "ProjectorEncoder",
    "load_reference_state_dict",
]
