"""Metadata lives in setup.cfg; this file adds the one optional C extension.

``pyuftp.message._native`` (pyuftp/message/_native.c) speeds up reading received messages.
It builds against Python's headers and the libxml2 headers that the lxml wheel carries, with
the compiler the machine has; if it cannot be built, pyuftp installs without it and reads
messages the pure-Python way, to the same dicts (test/message/test_native.py holds the two to
that).
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _include_dirs() -> list[str]:
    dirs = []
    try:
        import lxml
        dirs += lxml.get_include()
    except ImportError:  # pragma: no cover - the build then only finds system headers
        pass
    return dirs + ["/usr/include/libxml2"]


class OptionalBuildExt(build_ext):
    """Build the extension if the machine can; a failure is a warning, not an error."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "use Python"
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)

    @staticmethod
    def _skip(exc: Exception) -> None:
        print(f"pyuftp: the optional C reader was not built ({exc}); "
              "messages are read the pure-Python way", file=sys.stderr)


setup(
    ext_modules=[Extension("pyuftp.message._native",
                           ["pyuftp/message/_native.c", "pyuftp/message/_native_write.c"],
                           depends=["pyuftp/message/_native.h"],
                           include_dirs=_include_dirs(), optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
