"""Deprecated name: the training settings moved to ``training/settings.py``.

``import train_config`` keeps working (with a DeprecationWarning); write
``from simple_cnn_from_scratch import TrainConfig`` (or ``from training.settings import
TrainConfig``) instead.
"""

import sys
import warnings

from training import settings

warnings.warn(
    "train_config moved to training/settings.py: use `from training.settings import TrainConfig`",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = settings
