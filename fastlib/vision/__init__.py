"""Computer vision: images, masks and points, fast batch augmentation, cnn_learner and unet_learner."""
from .. import basics
from ..basics import *
from . import data, image, interpret, learner, models, transform, tta
from .data import *
from .image import *
from .interpret import *
from .learner import *
from .transform import *
from .tta import *

__all__ = sorted(set(basics.__all__ + image.__all__ + transform.__all__ + data.__all__ + learner.__all__
                     + interpret.__all__ + tta.__all__ + ['models']))
