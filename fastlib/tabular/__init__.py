"""Tabular data: procs (FillMissing, Categorify, Normalize), TabularList / TabularDataBunch, TabularModel, tabular_learner."""
import pandas as pd

from .. import basics
from ..basics import *
from . import data, learner, models, transform
from .data import *
from .learner import *
from .models import *
from .transform import *

__all__ = sorted(set(basics.__all__ + transform.__all__ + data.__all__ + models.__all__ + learner.__all__
                     + ['pd']))  # fastai v1's tabular lesson reads its CSV with `pd` right after the star import
