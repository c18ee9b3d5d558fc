"""fastlib.text: tokenization, text DataBunches, AWD-LSTM language models and classifiers (ULMFiT).

`from fastlib.text import *` gives the core (fastlib.basics), the data block API and the text names.
"""
import numpy as np
import pandas as pd
import torch

from .. import basics, data_block
from ..basics import *
from ..callbacks.rnn import RNNTrainer
from ..data_block import *
from . import data, interpret, learner, models, subword, transform
from .data import *
from .interpret import *
from .learner import *
from .models import *
from .subword import *
from .transform import *

__all__ = sorted(set(basics.__all__ + data_block.__all__ + transform.__all__ + data.__all__ + models.__all__
                     + learner.__all__ + interpret.__all__ + subword.__all__ + ['RNNTrainer', 'models', 'np', 'pd', 'torch', 'Path']))  # v1's lessons use these after the star import
