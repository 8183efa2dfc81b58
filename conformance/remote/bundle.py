"""The agent as it travels to a board: a zip of the package and a one-line bootstrap.

Nothing is installed on the board.  The host types one shell line into the
pipe it was given (ssh, ``adb shell``, a serial console's shell)::

    command -v python3 ... || echo <no-python3 marker>; exec python3 -I -u -c "<bootstrap>"

The bootstrap (base64 of zlib, so the line has no character a shell or a
tty would act on, and stays under a tty's 4095-byte line limit) checks the
Python version, puts a tty in raw mode, asks for the zip with a marker line,
reads ``<length>\\n<zip bytes>``, imports the package from memory and runs
``conformance.guest.agent --stdio``.  ``-I`` keeps the board's own
PYTHONPATH and user site out.  When the pipe closes the process ends and
nothing of it remains on the board.
"""

from __future__ import annotations

import base64
import io
import shlex
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # conformance/
# Host-only parts the agent never imports: the mutation sweep, the report renderers,
# building and booting guests, the kernel matrix, the host side of the pipe itself.
HOST_ONLY = ("mutants", "report", "remote", "qemu", "matrix.py")
MIN_PYTHON = (3, 7)

MARKER = "@@dmabuf-conformance:"
SEND = MARKER + "send"
ERROR = MARKER + "error "
# Typed into the shell as two quoted halves, so the echo of the typed line (a
# serial console echoes) does not read as the marker itself.
_ERROR_IN_SHELL = '"' + MARKER + '""error '

_BOOTSTRAP = r'''
import sys, os
if sys.version_info < %(min)r:
    sys.stdout.write("\n%(error)sPython %%s on the board is too old: "
                     "the agent needs %(min_text)s or newer\n" %% sys.version.split()[0])
    sys.stdout.flush()
    sys.exit(3)
try:
    import atexit, termios, tty
    if os.isatty(0):
        atexit.register(termios.tcsetattr, 0, termios.TCSADRAIN, termios.tcgetattr(0))
        tty.setraw(0)
except Exception:
    pass
import importlib.abc, importlib.util, io, zipfile
os.write(1, b"\n%(send)s\n")
def _read(n):
    out = b""
    while len(out) < n:
        chunk = os.read(0, n - len(out))
        if not chunk:
            sys.exit(4)
        out += chunk
    return out
_head = b""
while not _head.endswith(b"\n"):
    _head += _read(1)
_zip = zipfile.ZipFile(io.BytesIO(_read(int(_head))))
_names = set(_zip.namelist())
class _MemoryImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        base = name.replace(".", "/")
        for file, package in ((base + "/__init__.py", True), (base + ".py", False)):
            if file in _names:
                return importlib.util.spec_from_loader(name, self, origin="<agent>/" + file,
                                                       is_package=package)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        name = module.__spec__.origin[len("<agent>/"):]
        if module.__spec__.submodule_search_locations is not None:
            module.__path__ = []
        module.__file__ = module.__spec__.origin
        exec(compile(_zip.read(name), module.__file__, "exec"), module.__dict__)
sys.meta_path.insert(0, _MemoryImporter())
sys.argv = ["conformance.guest.agent"] + %(args)r
from conformance.guest import agent
sys.exit(agent.main(%(args)r))
'''


def _sources() -> list[Path]:
    files = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        rel = path.relative_to(PACKAGE_ROOT)
        if rel.parts[0] in HOST_ONLY or "__pycache__" in rel.parts:
            continue
        files.append(path)
    return files


@lru_cache(maxsize=1)
def agent_zip() -> bytes:
    """The package's sources as a zip; the same bytes for the same sources (fixed times)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _sources():
            info = zipfile.ZipInfo("conformance/" + path.relative_to(PACKAGE_ROOT).as_posix(),
                                   date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return out.getvalue()


def bootstrap_source(agent_args: list[str]) -> str:
    return _BOOTSTRAP % {"min": MIN_PYTHON, "min_text": ".".join(map(str, MIN_PYTHON)),
                         "error": ERROR, "send": SEND, "args": list(agent_args)}


def bootstrap_line(agent_args: list[str], python: str = "python3") -> str:
    """The shell line that starts the agent on the board from its own python."""
    py = shlex.quote(python)
    code = base64.b64encode(zlib.compress(bootstrap_source(agent_args).encode(), 9)).decode()
    run = ("import zlib,base64;exec(zlib.decompress(base64.b64decode('" + code + "')))")
    return (f"command -v {py} >/dev/null 2>&1 || echo {_ERROR_IN_SHELL}the board has no "
            f"{python} on its PATH ($PATH): the agent needs Python "
            f"{'.'.join(map(str, MIN_PYTHON))} or newer\"; "
            f"exec {py} -I -u -c \"{run}\"")


def payload() -> bytes:
    """What follows the send marker: the zip's length on a line, then the zip."""
    data = agent_zip()
    return str(len(data)).encode() + b"\n" + data
