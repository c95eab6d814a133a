"""netcl.train.save / load: the round trip, the refusals, and atomic replacement."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from netcl.core.tensor import from_numpy
from netcl.train import checkpoint as checkpoint_module
from netcl.train import load, save


@pytest.mark.smoke
def test_round_trip_keeps_every_type(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    state = {
        "model": {"0.weight": rng.normal(size=(3, 4)).astype(np.float32), "0.bias": np.zeros(3)},
        "optimizer": {
            "state": {0: {"step": 3.0, "exp_avg": np.arange(4, dtype=np.float32)}, 7: {}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "params": [0]}],
        },
        "rng": {"state": {"state": 2**127 + 12345, "inc": 3}, "bit_generator": "PCG64"},
        "odd floats": [float("inf"), float("-inf"), 0.1, -0.0],
        "arrays": [np.array(5, np.int64), np.zeros((0, 3), np.float32), np.array([True, False])],
        "tensor": from_numpy(np.array([1.5, 2.5], np.float32)),
        "none": None,
        "nested": ((1, "a"), [2, {"b": 3}]),
        "numpy scalar": np.float32(0.25),
    }
    path = tmp_path / "c.safetensors"
    save(state, path)
    back = load(path)
    assert back["model"]["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(back["model"]["0.weight"], state["model"]["0.weight"])
    assert back["model"]["0.bias"].dtype == np.float64
    assert list(back["optimizer"]["state"]) == [0, 7]  # int keys stay ints
    np.testing.assert_array_equal(back["optimizer"]["state"][0]["exp_avg"], np.arange(4))
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["rng"] == state["rng"]
    assert back["odd floats"][:2] == [float("inf"), float("-inf")]
    assert back["odd floats"][2] == 0.1 and str(back["odd floats"][3]) == "-0.0"
    assert back["arrays"][0].shape == () and back["arrays"][0] == 5
    assert back["arrays"][1].shape == (0, 3)
    assert back["arrays"][2].dtype == np.bool_
    np.testing.assert_array_equal(back["tensor"], [1.5, 2.5])
    assert back["none"] is None
    assert back["nested"] == ((1, "a"), [2, {"b": 3}])
    assert back["numpy scalar"] == 0.25


def test_nan_round_trips(tmp_path: Path) -> None:
    save({"x": float("nan")}, tmp_path / "n")
    value = load(tmp_path / "n")["x"]
    assert isinstance(value, float) and value != value


def test_keys_that_join_to_the_same_name_keep_both_arrays(tmp_path: Path) -> None:
    state = {"a/b": np.ones(2), "a": {"b": np.zeros(2)}}
    save(state, tmp_path / "c")
    back = load(tmp_path / "c")
    np.testing.assert_array_equal(back["a/b"], np.ones(2))
    np.testing.assert_array_equal(back["a"]["b"], np.zeros(2))


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"a": [1, object()]}, "a/1"),
        ({"a": {(1, 2): 3}}, "(1, 2)"),
        ({"a": np.array([object()])}, "Python objects"),
    ],
)
def test_unsaveable_objects_raise_naming_where_and_write_nothing(
    tmp_path: Path, obj: object, where: str
) -> None:
    path = tmp_path / "c"
    with pytest.raises(TypeError, match=where.replace("(", r"\(").replace(")", r"\)")):
        save(obj, path)
    assert list(tmp_path.iterdir()) == []


class _Payload:
    """Unpickling this runs ``touch marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with pytest.raises(ValueError, match="not a netcl checkpoint"):
        load(path)
    assert not marker.exists()
    # The payload is live: unpickling it (what torch.load of old did) would have run it.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_pickle_inside_safetensors_metadata_is_only_text(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker)).hex()
    path = tmp_path / "c"
    path.write_bytes(safetensors.numpy.save({}, metadata={"format": checkpoint_module.FORMAT,
                                                          "netcl": payload}))
    with pytest.raises(ValueError, match="structure is damaged"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a safetensors file"),
        (b"\x00" * 3, "not a safetensors file"),
        (safetensors.numpy.save({"w": np.ones(2)}), "not a netcl checkpoint"),
        (safetensors.numpy.save({}, metadata={"format": "other"}), "not a netcl checkpoint"),
        (safetensors.numpy.save({}, metadata={"format": checkpoint_module.FORMAT,
                                              "netcl": '{"array": "missing"}'}), "damaged"),
        (safetensors.numpy.save({}, metadata={"format": checkpoint_module.FORMAT,
                                              "netcl": '{"eval": "1"}'}), "damaged"),
    ],
    # Named, not derived from the bytes: safetensors writes metadata keys in a per-process
    # order, and pytest-xdist's workers must collect the same test names.
    ids=["empty", "three bytes", "no metadata", "another format", "a missing array",
         "an unknown key"],
)
def test_files_that_are_not_checkpoints_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "c"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as raised:
        load(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("keep", [-10, -400, 20, 4])
def test_a_truncated_checkpoint_is_called_truncated(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "c"
    save({"w": np.ones(100, np.float32)}, path)
    path.write_bytes(path.read_bytes()[:keep])
    message = "not a netcl checkpoint" if keep == 4 else r"is truncated: \d+ bytes where"
    with pytest.raises(ValueError, match=message):
        load(path)


def test_a_flipped_byte_in_the_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c"
    save({"w": np.arange(100, dtype=np.float32), "b": np.zeros(3, np.int64)}, path)
    data = bytearray(path.read_bytes())
    data[-50] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match their SHA-256"):
        load(path)


def test_missing_file_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save({}, tmp_path / "no" / "c")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "c"
    save({"version": 1}, path)

    def crash(*args: object) -> None:
        raise OSError(f"simulated crash in {failing}")

    monkeypatch.setattr(checkpoint_module.os, failing, crash)
    with pytest.raises(OSError, match="simulated crash"):
        save({"version": 2}, path)
    monkeypatch.undo()
    assert load(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_save_replaces_the_file_and_flushes_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_mode)
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_module.os, "fsync", fsync)
    path = tmp_path / "c"
    save({"version": 1}, path)
    save({"version": 2}, path)
    assert load(path) == {"version": 2}
    import stat

    # Each save flushes the new file, then the folder holding the rename.
    assert [stat.S_ISDIR(m) for m in synced] == [False, True, False, True]


def test_a_dead_writers_temporary_is_removed_by_the_next_save(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {
        "dead": f".c.{host}.{dead.pid}.x1.tmp",  # killed mid-save: removed
        "alive": f".c.{host}.{os.getpid()}.x2.tmp",  # a save under way: kept
        "elsewhere": f".c.other-host.{dead.pid}.x3.tmp",  # another host's: kept
        "other file": f".d.{host}.{dead.pid}.x4.tmp",  # another checkpoint's: kept
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    save({"version": 1}, tmp_path / "c")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"c", *names.values()} - {names["dead"]}

