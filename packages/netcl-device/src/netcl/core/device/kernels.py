"""KernelCache: OpenCL programs built once per device and kept."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import pyopencl as cl

from netcl.core.device.errors import KernelBuildError

Defines = Mapping[str, str | int | float]


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
        self._programs: dict[tuple[str, str, str], dict[str, cl.Kernel]] = {}
        self._sources: dict[Path, str] = {}

    def kernel(
        self,
        path: Path | str,
        name: str,
        defines: Defines | None = None,
        options: tuple[str, ...] = (),
    ) -> cl.Kernel:
        """Kernel ``name`` from the ``.cl`` file at ``path``, built with ``defines`` once."""
        path = Path(path)
        source = self._sources.get(path)
        if source is None:
            source = path.read_text()
            self._sources[path] = source
        return self._get(source, str(path), name, defines or {}, options)

    def kernel_from_source(
        self,
        source: str,
        name: str,
        defines: Defines | None = None,
        options: tuple[str, ...] = (),
        origin: str = "<source>",
    ) -> cl.Kernel:
        """Kernel ``name`` from OpenCL ``source`` text; ``origin`` names it in errors."""
        return self._get(source, origin, name, defines or {}, options)

    def _get(
        self, source: str, origin: str, name: str, defines: Defines, options: tuple[str, ...]
    ) -> cl.Kernel:
        full_source = _define_lines(defines) + source
        key = (full_source, " ".join(options), origin)
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
        return len(self._programs)
