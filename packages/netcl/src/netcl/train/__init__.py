"""netcl.train: the Trainer, its callbacks, checkpoints (save / load) and plots.

``netcl`` itself is a namespace package (no distribution may ship
``netcl/__init__.py``), so saving and loading live here:
``netcl.train.save(obj, path)`` and ``netcl.train.load(path)`` write and read
state dicts as safetensors plus JSON, atomically, without pickle.
"""

from netcl.train._version import __version__
from netcl.train.callbacks import Callback, Checkpoint
from netcl.train.checkpoint import load, save
from netcl.train.trainer import Trainer

__all__ = ["Callback", "Checkpoint", "Trainer", "__version__", "load", "save"]
