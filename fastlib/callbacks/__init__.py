"""fastlib's callbacks: `from fastlib.callbacks import *` gives them all."""
from ..basic_train import RecordOnCPU, Recorder
from . import fp16, hooks, lr_finder, mixup, one_cycle, training
from .fp16 import *
from .hooks import *
from .lr_finder import *
from .mixup import *
from .one_cycle import *
from .training import *

__all__ = (fp16.__all__ + hooks.__all__ + lr_finder.__all__ + mixup.__all__ + one_cycle.__all__ + training.__all__
           + ['Recorder', 'RecordOnCPU'])
