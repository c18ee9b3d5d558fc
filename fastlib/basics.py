"""Everything the core offers, for `from fastlib.basics import *` in a notebook or a script."""
from . import (basic_data, basic_train, callback, callbacks, core, data_block, datasets, distributed, layers, metrics,
               progress, torch_core, train)
from .basic_data import *
from .basic_train import *
from .callback import *
from .callbacks import *
from .core import *
from .data_block import *
from .datasets import *
from .distributed import *
from .layers import *
from .metrics import *
from .progress import no_progress
from .torch_core import *
from .train import *

__all__ = sorted(set(core.__all__ + torch_core.__all__ + basic_data.__all__ + data_block.__all__ + callback.__all__
                     + basic_train.__all__ + train.__all__ + callbacks.__all__ + layers.__all__ + metrics.__all__ + datasets.__all__
                     + distributed.__all__
                     + ['no_progress']))
