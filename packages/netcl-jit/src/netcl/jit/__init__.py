"""netcl.jit: capture a step's kernel launches once, replay them, fuse elementwise chains.

>>> from netcl.jit import jit
>>> @jit
... def step(x):
...     return (x * 2.0).relu()

Calls 1 and 2 run eagerly (2 is captured); from call 3 on, ``step`` replays.
"""

from netcl.jit._version import __version__
from netcl.jit.capture import CaptureError
from netcl.jit.jit import Jitted, Launches, jit

__all__ = ["CaptureError", "Jitted", "Launches", "__version__", "jit"]
