"""fastlib's callbacks: `from fastlib.callbacks import *` gives them all."""
from ..basic_train import RecordOnCPU, Recorder
from . import (csv_logger, fp16, general_sched, hooks, loss_metrics, lr_finder, misc, mixup, one_cycle, rnn, tracker,
               training)
from .csv_logger import *
from .fp16 import *
from .general_sched import *
from .hooks import *
from .loss_metrics import *
from .lr_finder import *
from .misc import *
from .mixup import *
from .one_cycle import *
from .rnn import *
from .tracker import *
from .training import *

__all__ = (csv_logger.__all__ + fp16.__all__ + general_sched.__all__ + hooks.__all__ + loss_metrics.__all__
           + lr_finder.__all__ + misc.__all__ + mixup.__all__ + one_cycle.__all__ + rnn.__all__ + tracker.__all__
           + training.__all__ + ['Recorder', 'RecordOnCPU'])
