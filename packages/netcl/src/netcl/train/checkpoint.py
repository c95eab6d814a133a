"""save / load: state dicts to one safetensors file, written atomically, read without pickle.

A checkpoint is one ``.safetensors`` file: every array of the saved object as a
safetensors tensor (named by where it sat, ``model/0.weight``), and the rest of
the object (dicts, lists, tuples, numbers, strings, None) as JSON in the file's
metadata, where each array appears as ``{"array": name}``. Reading it parses a
JSON header and copies raw bytes: nothing in the file is ever executed, so a
checkpoint from an untrusted source is safe to load (a pickle is refused).
The metadata also holds a SHA-256 of every array (name, dtype, shape and
bytes), checked on load: a flipped byte in the data is an error, not a
silently different model. A file shorter than its header says is called
truncated.

Writes are atomic: the bytes go to a temporary file in the same folder, which
is flushed to disk, renamed over the target, and the folder itself is flushed,
so a process killed at any moment leaves either the old file or the new one.
A process killed mid-write also leaves its temporary file; the next save to
the same path on that host removes it (the name carries host and process id,
and only a dead process's temporaries are removed).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from netcl.core.tensor import Tensor

FORMAT = "netcl.checkpoint/1"
# The keys of the safetensors metadata (a str -> str map) this format uses.
_FORMAT_KEY, _TREE_KEY, _DIGEST_KEY = "format", "netcl", "sha256"

PathLike = str | os.PathLike[str]


def save(obj: Any, path: PathLike) -> None:
    """Write ``obj`` to ``path`` atomically (see the module doc).

    ``obj`` is a tree of dicts (str or int keys), lists, tuples, None, bool,
    int, float, str, numpy arrays and netcl Tensors (saved as their numpy
    values): what ``state_dict()`` of a module, optimizer or scheduler gives.
    numpy scalars are saved as Python numbers. Anything else raises TypeError
    naming where it sat, and nothing is written.
    """
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    tree = _encode(obj, "", arrays)
    metadata = {_FORMAT_KEY: FORMAT, _TREE_KEY: json.dumps(tree, allow_nan=False),
                _DIGEST_KEY: _digest(arrays)}
    atomic_write(Path(path), safetensors.numpy.save(arrays, metadata=metadata))


def load(path: PathLike) -> Any:
    """Read what :func:`save` wrote: the same tree, with numpy arrays (Tensors come back as
    arrays, tuples as tuples). Raises FileNotFoundError, or ValueError naming the path and
    what is wrong if the file is not a netcl checkpoint (a pickle, a safetensors file of
    another origin), is truncated, or its arrays do not match their checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_length(path)
    try:
        with safetensors.safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}  # noqa: SIM118
    except safetensors.SafetensorError as error:
        raise ValueError(
            f"{path} is not a netcl checkpoint (not a safetensors file: {error})"
        ) from None
    if metadata.get(_FORMAT_KEY) != FORMAT or _TREE_KEY not in metadata:
        raise ValueError(
            f"{path} is a safetensors file but not a netcl checkpoint (its metadata has no "
            f"{_FORMAT_KEY!r}: {FORMAT!r})"
        )
    # Checkpoints written before the checksum have none: they load unchecked.
    if _DIGEST_KEY in metadata and metadata[_DIGEST_KEY] != _digest(arrays):
        raise ValueError(
            f"{path}: the checkpoint's arrays do not match their SHA-256 (the file was "
            "damaged after it was written)"
        )
    try:
        tree = json.loads(metadata[_TREE_KEY])
        return _decode(tree, arrays)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path}: the checkpoint's structure is damaged ({error})") from None


def _digest(arrays: Mapping[str, np.ndarray[Any, Any]]) -> str:
    """SHA-256 of every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, array.shape]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_length(path: Path) -> None:
    """ValueError if ``path`` is shorter than a safetensors header at its start says.

    The layout (safetensors' format): 8 bytes of little-endian header length, the JSON
    header, then the data, each tensor's end offset in the header's ``data_offsets``.
    A file that does not start like that is left to safetensors to refuse.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        start = f.read(8)
        if len(start) < 8:
            return
        header_length = int.from_bytes(start, "little")
        if header_length > 100_000_000:  # safetensors' own limit: not a safetensors file
            return
        header_bytes = f.read(header_length)
    expected = 8 + header_length
    if len(header_bytes) == header_length:
        try:
            header = json.loads(header_bytes)
        except ValueError:
            return
        if not isinstance(header, dict):
            return
        ends = [entry.get("data_offsets", [0, 0])[1] for name, entry in header.items()
                if name != "__metadata__" and isinstance(entry, dict)]
        expected += max((e for e in ends if isinstance(e, int)), default=0)
    if size < expected:
        raise ValueError(
            f"{path} is truncated: {size} bytes where its header promises {expected} (a copy "
            "or a save that was cut short?)"
        )


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash at any moment leaves the old or new file."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    host = socket.gethostname()
    _remove_dead_temporaries(folder, f".{path.name}.{host}.")
    fd, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{path.name}.{host}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # The rename lives in the folder's entries: flush them too, or a power cut may undo it.
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def _remove_dead_temporaries(folder: Path, prefix: str) -> None:
    """Delete the temporary files ``prefix``<pid>.*.tmp whose process no longer runs."""
    for leftover in folder.glob(glob.escape(prefix) + "*.tmp"):
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's
    return True


def _encode(obj: Any, where: str, arrays: dict[str, np.ndarray[Any, Any]]) -> Any:
    """JSON for ``obj``; arrays go into ``arrays`` under a name made from ``where``.

    Every container is tagged (``{"dict": [[key, value], ...]}``, ``{"tuple": [...]}``,
    ``{"array": name}``) and lists are JSON lists, so int keys and tuples come back as
    they were and no user string can pass for a tag.
    """
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        # json writes inf and nan as Infinity and NaN; Python's json reads them back.
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), where, arrays)
    if isinstance(obj, Tensor):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"save: the array at {where or 'the top'} holds Python objects")
        name = where or "array"
        while name in arrays:  # two keys that join to the same path ("a/b" and a, b)
            name += "'"
        arrays[name] = np.ascontiguousarray(obj).reshape(obj.shape)  # keeps a 0-d array 0-d
        return {"array": name}
    if isinstance(obj, Mapping):
        items = []
        for key, value in obj.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise TypeError(
                    f"save: the dict at {where or 'the top'} has key {key!r}; keys must be "
                    "str or int"
                )
            items.append([key, _encode(value, _join(where, key), arrays)])
        return {"dict": items}
    if isinstance(obj, list | tuple):
        encoded = [_encode(v, _join(where, i), arrays) for i, v in enumerate(obj)]
        return encoded if isinstance(obj, list) else {"tuple": encoded}
    raise TypeError(
        f"save: cannot save a {type(obj).__name__} (at {where or 'the top'}); a checkpoint holds "
        "dicts, lists, tuples, numbers, strings, None, numpy arrays and Tensors"
    )


def _join(where: str, key: object) -> str:
    return f"{where}/{key}" if where else str(key)


def _decode(tree: Any, arrays: Mapping[str, np.ndarray[Any, Any]]) -> Any:
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if isinstance(tree, dict) and len(tree) == 1:
        (tag, body), = tree.items()
        if tag == "dict" and isinstance(body, list):
            decoded = {}
            for item in body:
                if not (isinstance(item, list) and len(item) == 2):
                    raise ValueError(f"a dict entry is {item!r}, not a [key, value] pair")
                key, value = item
                if isinstance(key, bool) or not isinstance(key, str | int):
                    raise ValueError(f"a dict key is {key!r}, not a str or int")
                decoded[key] = _decode(value, arrays)
            return decoded
        if tag == "tuple" and isinstance(body, list):
            return tuple(_decode(v, arrays) for v in body)
        if tag == "array" and isinstance(body, str):
            if body not in arrays:
                raise ValueError(f"the array {body!r} is named but not in the file")
            return arrays[body]
        if tag == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
    raise ValueError(f"unexpected node {str(tree)[:80]!r}")
