"""Deprecated name: the model file's code moved to ``training/model_file.py``.

``import model_file`` keeps working (with a DeprecationWarning); write
``from training import model_file`` instead, or ``inference.load_classifier`` to predict.
"""

import sys
import warnings

from training import model_file

warnings.warn(
    "model_file moved to training/model_file.py: use `from training import model_file`",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = model_file
