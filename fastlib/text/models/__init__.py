"""Text models: the AWD-LSTM encoder, its language-model decoder and helpers."""
from . import awd_lstm
from .awd_lstm import *

__all__ = list(awd_lstm.__all__)
