"""fastlib: fastai v1's interface for training PyTorch models, rebuilt (`from fastlib.basics import *`)."""
__version__ = '0.1.0'
