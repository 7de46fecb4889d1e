"""EEG/MEG encoders: one file per architecture, shared blocks in :mod:`.layers`.

Importing this package defines, and so registers (:data:`.base.ENCODER_CLASSES`), every encoder.
"""

from eegvision.models.encoders.atms import ATMSEncoder, load_reference_state_dict
from eegvision.models.encoders.atms50 import ATMS50Encoder
from eegvision.models.encoders.base import ENCODER_CLASSES, EEGEncoder
from eegvision.models.encoders.braindecode_head import BraindecodeEncoder
from eegvision.models.encoders.brainmlp import BrainMLPEncoder
from eegvision.models.encoders.eegproject import EEGProjectEncoder
from eegvision.models.encoders.ensemble import EnsembleEncoder
from eegvision.models.encoders.linear import LinearEncoder
from eegvision.models.encoders.nice import NICEEncoder
from eegvision.models.encoders.projected import ProjectedEncoder
from eegvision.models.encoders.projector import ProjectorEncoder
from eegvision.models.encoders.residual import ResidualEncoder
from eegvision.models.encoders.routed import RoutedEncoder
from eegvision.models.encoders.stconv import STConvEncoder

__all__ = [
    "ATMS50Encoder",
    "ENCODER_CLASSES",
    "ATMSEncoder",
    "BraindecodeEncoder",
    "BrainMLPEncoder",
    "EEGEncoder",
    "EEGProjectEncoder",
    "EnsembleEncoder",
    "LinearEncoder",
    "NICEEncoder",
    "ProjectedEncoder",
    "ProjectorEncoder",
    "ResidualEncoder",
    "RoutedEncoder",
    "STConvEncoder",
    "load_reference_state_dict",
]
