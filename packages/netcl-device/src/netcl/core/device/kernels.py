"""KernelCache: OpenCL programs built once per device, their kernels found by a cheap key.

The one kernel cache of netcl: every kernel of every package comes from its
device's ``KernelCache``. A kernel is looked up by (source files, kernel name,
defines, build options); the source text is read and formatted only when that
key is new, so a lookup costs a tuple hash, not a string format and a hash of
kilobytes of source. ``plans`` is where ops keep what they derive from a kernel
and a set of shapes (the arguments that never change between calls), keyed by
the op, so the same shapes cost a dict lookup the second time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyopencl as cl

from netcl.core.device.errors import KernelBuildError

Defines = Mapping[str, str | int | float]
Sources = Path | str | tuple[Path | str, ...]
T = TypeVar("T")

# Plans kept per device before the oldest half is dropped: a training loop
# repeats a few hundred shapes; a workload whose shapes never repeat must not
# grow the memo without bound.
MAX_PLANS = 1 << 15


class Variant(Protocol):
    """A hashable description of one build of a source, which gives its defines.

    Passing one instead of a defines mapping makes the lookup key the variant
    itself (a NamedTuple or frozen dataclass hashes in a few hundred ns), and
    ``defines()`` is called only when the variant is new.
    """

    def __hash__(self) -> int: ...

    def defines(self) -> Defines: ...


def _define_lines(defines: Defines) -> str:
    # Defines go into the source, not onto the command line, so a macro may
    # hold parentheses, commas and spaces (an op's expression, say).
    return "".join(f"#define {name} {value}\n" for name, value in sorted(defines.items()))


class KernelCache:
    """Builds each (source, defines, options) once and returns the same kernels after.

    pyopencl warns when a kernel is fetched from a program again and again, and
    setting it up costs a call into the driver; so the kernel objects of a
    program are taken once, when it is built, and handed out from here.
    """

    def __init__(self, context: cl.Context) -> None:
        self._context = context
        self._kernels: dict[Hashable, cl.Kernel] = {}
        self._programs: dict[tuple[str, tuple[str, ...]], dict[str, cl.Kernel]] = {}
        self._texts: dict[Path, str] = {}
        self._build_lock = threading.Lock()
        self.plans: dict[Hashable, Any] = {}

    def kernel(
        self,
        sources: Sources,
        name: str,
        defines: Defines | Variant | None = None,
        options: tuple[str, ...] = (),
    ) -> cl.Kernel:
        """Kernel ``name`` of the ``.cl`` file(s) ``sources`` (a tuple is concatenated
        in order), built with ``defines`` (a mapping, or a Variant) and ``options`` once."""
        key = (sources, name, _define_key(defines), options)
        kernel = self._kernels.get(key)
        if kernel is None:
            paths = sources if isinstance(sources, tuple) else (sources,)
            text = "".join(self._text(Path(p)) for p in paths)
            kernel = self._get(text, str(paths[-1]), name, _defines_of(defines), options)
            self._kernels[key] = kernel
        return kernel

    def kernel_from_source(
        self,
        source: str,
        name: str,
        defines: Defines | Variant | None = None,
        options: tuple[str, ...] = (),
        origin: str = "<source>",
    ) -> cl.Kernel:
        """Kernel ``name`` from OpenCL ``source`` text; ``origin`` names it in errors."""
        key = ("<source>", source, name, _define_key(defines), options)
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._get(source, origin, name, _defines_of(defines), options)
            self._kernels[key] = kernel
        return kernel

    def remember(self, key: Hashable, plan: T) -> T:
        """Keep ``plan`` in ``plans`` under ``key`` (the op's own key) and return it."""
        if len(self.plans) >= MAX_PLANS:
            for old in list(self.plans)[: MAX_PLANS // 2]:
                self.plans.pop(old, None)
        self.plans[key] = plan
        return plan

    def _text(self, path: Path) -> str:
        text = self._texts.get(path)
        if text is None:
            text = path.read_text()
            self._texts[path] = text
        return text

    def _get(
        self, source: str, origin: str, name: str, defines: Defines, options: tuple[str, ...]
    ) -> cl.Kernel:
        full_source = _define_lines(defines) + source
        key = (full_source, options)
        with self._build_lock:  # two threads asking for one new program build it once
            kernels = self._programs.get(key)
            if kernels is None:
                kernels = self._build(full_source, origin, options)
                self._programs[key] = kernels
        try:
            return kernels[name]
        except KeyError:
            raise KernelBuildError(
                f"{origin} has no kernel named {name!r}; it defines {sorted(kernels)}"
            ) from None

    def _build(self, source: str, origin: str, options: tuple[str, ...]) -> dict[str, cl.Kernel]:
        try:
            with warnings.catch_warnings():
                # NVIDIA's compiler logs a note for every kernel ("overriding
                # noinline attribute"), which pyopencl turns into a warning per
                # build; a failed build still raises, with the whole log.
                warnings.simplefilter("ignore", cl.CompilerWarning)
                program = cl.Program(self._context, source).build(options=list(options))
        except cl.RuntimeError as error:
            raise KernelBuildError(f"building {origin} failed:\n{error}") from error
        return {kernel.function_name: kernel for kernel in program.all_kernels()}

    def __len__(self) -> int:
        """The number of programs built."""
        return len(self._programs)


def _define_key(defines: Defines | Variant | None) -> Hashable:
    if defines is None:
        return ()
    if isinstance(defines, dict | Mapping):  # dict first: the ABC check costs more
        return tuple(sorted(defines.items()))
    return defines


def _defines_of(defines: Defines | Variant | None) -> Defines:
    if defines is None:
        return {}
    if isinstance(defines, Mapping):
        return defines
    return defines.defines()
