"""Collaborative filtering: CollabDataBunch, EmbeddingDotBias / EmbeddingNN, collab_learner, and the tabular names."""
from .. import tabular
from ..tabular import *
from . import data, learner, models
from .data import *
from .learner import *
from .models import *

__all__ = sorted(set(tabular.__all__ + data.__all__ + models.__all__ + learner.__all__))
