"""Build (or find) the test kernel, cached outside the repository.

A tarball (Debian's ``linux-source-*``) is built once: its build directory is
keyed by everything that changes the result: the tarball's identity, the config
fragments and the patches that apply to its version, and the architecture.  A
user's tree (``--kernel-src DIR``) is rebuilt incrementally on every run, since
it may have changed in any way a key cannot see (uncommitted edits, no git):
kbuild is the cache there.  A file lock makes concurrent pytest-xdist workers
build one at a time; ``KernelBuild.image_hash`` says which image was booted.

Version differences are data, not branches:

- ``qemu/config/dmabuf-conformance.config`` applies to every kernel; another
  ``qemu/config/*.config`` applies only to the kernels its ``# kernels:`` line
  names (e.g. ``# kernels: <5.11`` for staging ION), so an option that exists
  only on some versions is requested, and checked, only there.  In the same
  way a ``# arches:`` line (``# arches: aarch64``) scopes a fragment to guest
  architectures, and a ``# page-size:`` line (``# page-size: 16k``) to a build
  asked for with that page size (``--page-size``); a fragment that does not
  apply is not hashed either, so x86_64's key is what it was before arm64.
- ``qemu/patches/*.patch`` apply to every kernel; a patch of the same name in
  ``qemu/patches/<major>.<minor>/`` replaces it for that version (the context
  differs).

``KernelBuild.kdir`` is the ``O=`` build directory, prepared with
``modules_prepare`` so out-of-tree modules build with
``make -C qemu/probe KDIR=<kdir>``.

CLI: ``python -m conformance.qemu.kernel build [--kernel-src PATH] [--arch A]
[--page-size 16k]`` prints the image and kdir paths.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from conformance.errors import SetupError
from conformance.qemu.arch import ARCHES, DEFAULT_PAGE_SIZE, ArchSpec, get_arch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FRAGMENT = REPO_ROOT / "qemu" / "config" / "dmabuf-conformance.config"
CONFIG_DIR = DEFAULT_FRAGMENT.parent
PATCH_DIR = REPO_ROOT / "qemu" / "patches"
DEFAULT_SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
BUILD_LOG_TAIL_LINES = 60


class KernelBuildError(SetupError):
    """The test kernel could not be configured or built; the message has the log tail."""


@dataclass(frozen=True)
class KernelBuild:
    image: Path  # what QEMU boots with -kernel
    kdir: Path  # the O= build dir (KDIR= for out-of-tree modules); may be None-like for prebuilt
    release: str  # `make kernelrelease`
    config_hash: str  # the cache key
    arch: str = "x86_64"
    page_size: str = DEFAULT_PAGE_SIZE  # "16k": an arm64 build with CONFIG_ARM64_16K_PAGES
    # sha256[:16] of the image itself: the summary shows it, so a verdict names
    # the exact kernel it was reached on (a rebuilt tree gives a new hash).
    image_hash: str = ""

    def to_json(self) -> dict[str, str]:
        d = asdict(self)
        return {k: str(v) for k, v in d.items()}


def cache_root() -> Path:
    """``$DMABUF_CONFORMANCE_CACHE``, else ``$XDG_CACHE_HOME/dmabuf-conformance``."""
    override = os.environ.get("DMABUF_CONFORMANCE_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "dmabuf-conformance"


# -- what the cache key is made of ---------------------------------------------


def _source_identity(src: Path) -> str:
    """A tarball by path, size and mtime; a tree by path only (it is rebuilt every run)."""
    src = src.resolve()
    if src.is_file():
        st = src.stat()
        return f"tarball:{src}:{st.st_size}:{int(st.st_mtime)}"
    return f"tree:{src}"


# -- kernel versions and what applies to each -------------------------------------

Version = tuple[int, int]

_MAKEFILE_FIELD = re.compile(r"^(VERSION|PATCHLEVEL)\s*=\s*(\d+)\s*$", re.M)
_KERNELS_LINE = re.compile(r"^#\s*kernels:\s*(.+?)\s*$", re.M | re.I)
_ARCHES_LINE = re.compile(r"^#\s*arches:\s*(.+?)\s*$", re.M | re.I)
_PAGE_SIZE_LINE = re.compile(r"^#\s*page-size:\s*(.+?)\s*$", re.M | re.I)
_BOUND = re.compile(r"^(>=|<=|>|<|==)?\s*(\d+)\.(\d+)$")


def _version_from_makefile(text: str, where: object) -> Version:
    fields = dict(_MAKEFILE_FIELD.findall(text[:2000]))
    if "VERSION" not in fields or "PATCHLEVEL" not in fields:
        raise KernelBuildError(f"{where}: no VERSION/PATCHLEVEL in the top-level Makefile")
    return int(fields["VERSION"]), int(fields["PATCHLEVEL"])


def tree_version(tree: Path) -> Version:
    """``(major, minor)`` of a kernel source tree, from its top-level Makefile."""
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError as e:
        raise KernelBuildError(f"{tree}: cannot read the top-level Makefile: {e}") from e
    return _version_from_makefile(text, tree)


def tarball_version(tarball: Path) -> Version:
    """The version of a kernel tarball, read from its top-level Makefile without unpacking.

    The Makefile is a few thousand members in (about 0.5 s of xz); the answer is
    remembered per tarball identity so a warm run does not pay it.
    """
    memo = cache_root() / "src" / "versions.json"
    ident = _source_identity(tarball)
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if ident in known:
        major, minor = known[ident]
        return int(major), int(minor)
    try:
        with tarfile.open(tarball) as tf:
            for member in tf:
                if member.name.strip("./").count("/") == 1 and member.name.endswith("/Makefile"):
                    f = tf.extractfile(member)
                    if f is None:
                        break
                    version = _version_from_makefile(f.read(2000).decode(errors="replace"),
                                                     tarball)
                    break
            else:
                raise KernelBuildError(f"{tarball}: no top-level Makefile (not a kernel source)")
    except (OSError, tarfile.TarError) as e:
        raise KernelBuildError(f"cannot read kernel source {tarball}: {e}") from e
    known[ident] = list(version)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1))
    tmp.replace(memo)
    return version


def source_version(src: Path) -> Version:
    return tarball_version(src) if src.is_file() else tree_version(src)


def parse_kernels(spec: str, where: object = "") -> list[tuple[str, Version]]:
    """``"<5.11"``, ``">=5.11, <6.2"``, ``"5.10"`` -> ``[(op, (major, minor)), ...]``."""
    bounds = []
    for part in re.split(r"[,\s]+", spec.strip()):
        if not part:
            continue
        m = _BOUND.match(part)
        if not m:
            raise KernelBuildError(f"{where}: bad kernel range {spec!r} (e.g. '>=5.11, <6.2')")
        bounds.append((m.group(1) or "==", (int(m.group(2)), int(m.group(3)))))
    if not bounds:
        raise KernelBuildError(f"{where}: empty kernel range")
    return bounds


def in_range(version: Version, bounds: Sequence[tuple[str, Version]]) -> bool:
    checks = {">=": version.__ge__, "<=": version.__le__, ">": version.__gt__,
              "<": version.__lt__, "==": version.__eq__}
    return all(checks[op](v) for op, v in bounds)


def parse_arches(spec: str, where: object = "") -> list[str]:
    """``"aarch64"``, ``"aarch64, x86_64"`` -> the names, each one an ``ArchSpec``."""
    names = [n for n in re.split(r"[,\s]+", spec.strip()) if n]
    if not names:
        raise KernelBuildError(f"{where}: empty '# arches:' line")
    unknown = [n for n in names if n not in ARCHES]
    if unknown:
        # A typo would otherwise silently drop the fragment from every build.
        raise KernelBuildError(f"{where}: unknown architecture(s) {', '.join(unknown)} in "
                               f"'# arches:' (known: {', '.join(sorted(ARCHES))})")
    return names


def fragment_applies(fragment: Path, version: Version, arch: str = "x86_64",
                     page_size: str = DEFAULT_PAGE_SIZE) -> bool:
    """Whether a scoped fragment is merged into the build of (version, arch, page size).

    No ``# kernels:`` line: every version; no ``# arches:`` line: every
    architecture; no ``# page-size:`` line: every page size.  A fragment with a
    page-size line applies only to builds asked for with that size, so the
    default build of an arch never gets it.
    """
    text = fragment.read_text()
    m = _KERNELS_LINE.search(text)
    if m is not None and not in_range(version, parse_kernels(m.group(1), fragment)):
        return False
    m = _ARCHES_LINE.search(text)
    if m is not None and arch not in parse_arches(m.group(1), fragment):
        return False
    m = _PAGE_SIZE_LINE.search(text)
    wanted = m.group(1).lower() if m is not None else None
    return wanted is None or wanted == page_size


def fragments_for(version: Version, fragment: Optional[Path] = None, arch: str = "x86_64",
                  page_size: str = DEFAULT_PAGE_SIZE) -> list[Path]:
    """The fragments to merge, in order: the main one, then the scoped ones that apply."""
    main = fragment or DEFAULT_FRAGMENT
    if fragment is not None and fragment.resolve() != DEFAULT_FRAGMENT.resolve():
        if page_size != DEFAULT_PAGE_SIZE:
            raise KernelBuildError(
                f"--page-size {page_size} selects the suite's page-size fragment, but "
                f"--fragment {fragment} is taken as it is: put the page-size option "
                "(e.g. CONFIG_ARM64_16K_PAGES=y) in your fragment instead")
        return [main]  # a user's own fragment is taken as it is
    extra = [f for f in sorted(CONFIG_DIR.glob("*.config"))
             if f.resolve() != DEFAULT_FRAGMENT.resolve()
             and fragment_applies(f, version, arch, page_size)]
    if page_size != DEFAULT_PAGE_SIZE and not any(
            _PAGE_SIZE_LINE.search(f.read_text()) for f in extra):
        raise KernelBuildError(f"no fragment in {CONFIG_DIR} gives {arch} {page_size} pages "
                               f"(one with '# page-size: {page_size}' and '# arches: {arch}')")
    return [main, *extra]


def _patches(version: Optional[Version] = None) -> list[Path]:
    """The test-only patches, with per-version replacements from ``qemu/patches/X.Y/``."""
    if not PATCH_DIR.is_dir():
        return []
    chosen = {p.name: p for p in PATCH_DIR.glob("*.patch")}
    if version is not None:
        variant_dir = PATCH_DIR / f"{version[0]}.{version[1]}"
        if variant_dir.is_dir():
            chosen.update({p.name: p for p in variant_dir.glob("*.patch")})
    return [chosen[name] for name in sorted(chosen)]


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def build_key(src: Path, fragments: Sequence[Path], arch: ArchSpec,
              version: Optional[Version] = None) -> str:
    # The fragments are hashed as the one text merged into .config, so a kernel
    # that no version-scoped fragment applies to keeps the key it always had.
    merged = b"".join(f.read_bytes() for f in fragments)
    parts = [_source_identity(src).encode(), merged, arch.name.encode()]
    parts += [p.name.encode() + b"\0" + p.read_bytes() for p in _patches(version)]
    return _hash(*parts)


def image_hash(image: Path) -> str:
    """sha256[:16] of a kernel image: which kernel a run booted."""
    h = hashlib.sha256()
    with image.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# -- locking, logging, progress ------------------------------------------------


class _FileLock:
    """An exclusive flock held for the ``with`` block (one builder per key)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process building the kernel ({self.path})")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _say(msg: str) -> None:
    print(f"[kernel] {msg}", file=sys.stderr, flush=True)


def _tail(log: Path, lines: int = BUILD_LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build log)"
    return "\n".join(text[-lines:])


# A progress line at most this often while the kernel compiles: a user watching a cold
# first run sees it is moving, and a CI log gets a few dozen lines, not thousands.
PROGRESS_EVERY_S = 5.0
_OBJECT_LINE = ("CC ", "LD ", "AR ", "AS ")


def progress_line(what: str, compiled: int, elapsed: float, expected: Optional[int]) -> str:
    """``make bzImage: 412 of ~1100 objects, 95 s, about 160 s left`` (plain text)."""
    if not expected or compiled >= expected or compiled < 20:
        # Too early for a rate, or past what the last build of this arch had.
        return f"{what}: {compiled} objects, {elapsed:.0f} s"
    left = elapsed / compiled * (expected - compiled)
    return (f"{what}: {compiled} of ~{expected} objects, {elapsed:.0f} s, "
            f"about {left:.0f} s left")


# Objects a cold 6.1 build with the suite's fragments compiles, measured: the estimate's
# total when this cache has no finished build of the arch to take it from.
TYPICAL_OBJECTS = {"x86_64": 1380, "aarch64": 1300}


def _newest_build(arch: str) -> dict[str, Any]:
    """The stamp of the newest finished build of ``arch`` in this cache ({} if none)."""
    best: tuple[float, dict[str, Any]] = (0.0, {})
    for stamp in (cache_root() / "build").glob("*/.dmabuf-conformance-build.json"):
        try:
            d = json.loads(stamp.read_text())
            if d.get("arch") == arch and stamp.stat().st_mtime > best[0]:
                best = (stamp.stat().st_mtime, d)
        except (OSError, ValueError):
            continue
    return best[1]


def expected_objects(arch: str) -> Optional[int]:
    """Objects the newest finished build of ``arch`` compiled: the estimate's total."""
    objects = _newest_build(arch).get("objects")
    return int(objects) if objects else TYPICAL_OBJECTS.get(arch)


def expected_duration(arch: str) -> str:
    """What the user should expect, from this machine's last build of ``arch`` if any."""
    seconds = _newest_build(arch).get("seconds")
    if seconds:
        return f"the last one here took {float(seconds) / 60:.0f} min"
    # Measured on a 2-core machine: 6.4 min at load 2, 11.3 min with tests running beside it.
    return "6 to 11 min on 2 cores"


def _run_logged(argv: Sequence[str], log: Path, what: str, progress: bool = False,
                expected: Optional[int] = None) -> int:
    """Run ``argv`` appending to ``log``; on failure raise with the log tail.

    Returns the objects compiled (counted only with ``progress``).
    """
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        compiled = 0
        last_report = started
        for line in proc.stdout:
            out.write(line)
            if progress and line.lstrip().startswith(_OBJECT_LINE):
                compiled += 1
                now = time.monotonic()
                if now - last_report >= PROGRESS_EVERY_S:
                    _say(progress_line(what, compiled, now - started, expected))
                    last_report = now
        rc = proc.wait()
    if rc != 0:
        raise KernelBuildError(
            f"{what} failed (exit {rc}); full log: {log}\n--- last lines ---\n{_tail(log)}"
        )
    return compiled


# -- source trees ----------------------------------------------------------------


def _prepare_tarball_tree(tarball: Path, log: Path, version: Version) -> Path:
    """Unpack the tarball and apply the patches once, in a dir keyed by both."""
    parts = [_source_identity(tarball).encode()]
    parts += [p.name.encode() + b"\0" + p.read_bytes() for p in _patches(version)]
    root = cache_root() / "src" / _hash(*parts)
    done = root / ".ready"
    with _FileLock(root.with_suffix(".lock")):
        if done.exists():
            return _single_subdir(root)
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        _say(f"unpacking {tarball}")
        t0 = time.monotonic()
        _unpack(tarball, root)
        _say(f"unpacked in {time.monotonic() - t0:.0f} s")
        tree = _single_subdir(root)
        for patch in _patches(version):
            _say(f"applying {patch.relative_to(PATCH_DIR)}")
            # No fuzz: a patch that needs it belongs in qemu/patches/<major>.<minor>/.
            _run_logged(["patch", "-d", str(tree), "-p1", "--fuzz=0", "-i", str(patch)], log,
                        f"applying {patch.relative_to(PATCH_DIR)} (a kernel version whose "
                        f"context differs needs a variant in {PATCH_DIR}/<major>.<minor>/)")
        done.write_text("ok\n")
        return tree


def _unpack(tarball: Path, root: Path) -> None:
    """Unpack ``tarball`` into the empty directory ``root``.

    GNU tar, which runs xz as a process of its own beside it: linux-source-6.1 took
    17.2 s on this project's 2-core machine, against 32.8 s for tarfile, which does the
    decompression and its per-member work in one thread.  tarfile where tar or xz is
    missing.
    """
    if shutil.which("tar") and (tarball.suffix != ".xz" or shutil.which("xz")):
        r = subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise KernelBuildError(f"cannot unpack kernel source {tarball}: tar says "
                                   f"{r.stderr.strip()[-500:]}")
        return
    try:
        with tarfile.open(tarball) as tf:
            if sys.version_info >= (3, 12):
                tf.extractall(root, filter="fully_trusted")
            else:
                tf.extractall(root)
    except (OSError, tarfile.TarError) as e:
        raise KernelBuildError(f"cannot unpack kernel source {tarball}: {e}") from e


def prepared_tree(tarball: Path = DEFAULT_SOURCE_TARBALL) -> Path:
    """The unpacked, patched source tree of ``tarball`` (made once, then shared).

    Read-only for its users: the mutant workspace (conformance/mutants/) copies it
    before changing a file.
    """
    if not tarball.is_file():
        raise KernelBuildError(f"kernel source {tarball} not found; install it with "
                               "`qemu/setup-host.sh` or name another with --kernel-src")
    version = source_version(tarball)
    log = cache_root() / "src" / "prepare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return _prepare_tarball_tree(tarball, log, version)


def _single_subdir(root: Path) -> Path:
    subdirs = [d for d in root.iterdir() if d.is_dir()]
    if len(subdirs) != 1 or not (subdirs[0] / "Makefile").exists():
        raise KernelBuildError(f"{root} does not hold exactly one kernel tree")
    return subdirs[0]


def _check_user_tree(tree: Path) -> None:
    if not (tree / "Makefile").is_file() or not (tree / "Kconfig").is_file():
        raise KernelBuildError(
            f"--kernel-src {tree}: not a kernel source tree (no Makefile/Kconfig)"
        )
    # A user's tree is never modified; say which test-only patches it lacks.
    for patch in _patches(tree_version(tree)):
        r = subprocess.run(["patch", "-d", str(tree), "-p1", "-R", "--dry-run", "-s", "-f",
                            "-i", str(patch)], capture_output=True)
        if r.returncode != 0:
            _say(f"note: {tree} does not carry {patch.name}; tests needing it will skip")


# -- configuration -----------------------------------------------------------------

_OPTION = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=v`` and ``# CONFIG_X is not set`` (as ``n``) lines of a .config/fragment."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        m = _OPTION.match(line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = _UNSET.match(line)
        if m:
            out[m.group(1)] = "n"
    return out


def missing_options(requested: dict[str, str], final: dict[str, str]) -> list[str]:
    """Requested options that olddefconfig dropped or changed (as kunit.py checks)."""
    bad = []
    for name, want in requested.items():
        got = final.get(name, "n")
        if got != want:
            bad.append(f"{name}={want} (got {got})")
    return bad


def _configure(tree: Path, kdir: Path, fragments: Sequence[Path], arch: ArchSpec,
               log: Path) -> None:
    make = _make_argv(tree, kdir, arch)
    _run_logged(make + ["tinyconfig"], log, "make tinyconfig")
    config = kdir / ".config"
    # Later assignments win in kconfig, so appending the fragments merges them.
    with config.open("a") as f:
        for fragment in fragments:
            f.write("\n# --- " + fragment.name + " ---\n" + fragment.read_text())
    _run_logged(make + ["olddefconfig"], log, "make olddefconfig")
    final = parse_config(config.read_text())
    # Only the fragments chosen for this version are checked, so an option that
    # exists on some versions only (staging ION) never fails another version.
    bad = [f"{b} [{fragment.name}]" for fragment in fragments
           for b in missing_options(parse_config(fragment.read_text()), final)]
    if bad:
        raise KernelBuildError(
            "these requested options did not survive olddefconfig "
            "(a dependency is missing or the option does not exist in this kernel; "
            "scope an option to the versions that have it with a '# kernels:' fragment "
            "in qemu/config/): " + ", ".join(bad)
        )


def _make_argv(tree: Path, kdir: Path, arch: ArchSpec) -> list[str]:
    argv = ["make", "-C", str(tree), f"O={kdir}", f"ARCH={arch.kernel_arch}",
            f"-j{os.cpu_count() or 1}"]
    if arch.cross_compile and platform.machine() != arch.name:
        argv.append(f"CROSS_COMPILE={arch.cross_compile}")
    return argv


# -- the entry point ----------------------------------------------------------------


def ensure_kernel(
    kernel_src: Optional[Path] = None,
    *,
    arch: str = "x86_64",
    fragment: Optional[Path] = None,
    kernel: Optional[Path] = None,
    kdir: Optional[Path] = None,
    page_size: str = DEFAULT_PAGE_SIZE,
) -> KernelBuild:
    """The test kernel: prebuilt (``kernel`` + ``kdir``), from the cache, or built now.

    A tarball's build is reused from the cache; a user's tree is brought up to
    date by an incremental kbuild on every call (a no-op make when unchanged).
    """
    spec = get_arch(arch)
    page_size = spec.check_page_size(page_size)
    if kernel is not None:
        return _prebuilt(Path(kernel), Path(kdir) if kdir else None, spec, page_size)
    user_fragment = Path(fragment) if fragment else None
    if user_fragment is not None and not user_fragment.is_file():
        raise KernelBuildError(f"config fragment {user_fragment} does not exist")
    src = Path(kernel_src) if kernel_src else DEFAULT_SOURCE_TARBALL
    if not src.exists():
        hint = ("install it with `apt-get install linux-source-6.1` (or run "
                "qemu/setup-host.sh), or name a tree with --kernel-src PATH")
        raise KernelBuildError(f"kernel source {src} not found; {hint}")
    if src.is_dir():
        _check_user_tree(src)
    elif not tarfile.is_tarfile(src):
        raise KernelBuildError(f"--kernel-src {src}: neither a kernel tree nor a tarball")
    version = source_version(src)
    fragments = fragments_for(version, user_fragment, spec.name, page_size)
    key = build_key(src, fragments, spec, version)
    # The page size in the name only says which build a directory is; the key has it already.
    variant = "" if page_size == DEFAULT_PAGE_SIZE else f"-{page_size}"
    build_dir = cache_root() / "build" / f"{spec.name}{variant}-{key}"
    stamp = build_dir / ".dmabuf-conformance-build.json"
    with _FileLock(build_dir.with_suffix(".lock")):
        if src.is_file() and stamp.exists():
            return _from_stamp(stamp)
        build_dir.mkdir(parents=True, exist_ok=True)
        log = build_dir / "build.log"
        configured = build_dir / ".dmabuf-conformance-configured"
        if not configured.exists():
            log.write_text(f"dmabuf-conformance kernel build {key} for {spec.name}\n")
        tree = _prepare_tarball_tree(src, log, version) if src.is_file() else src
        started = time.monotonic()
        if not configured.exists():
            _say(f"building the {spec.name} test kernel ({version[0]}.{version[1]}, "
                 f"{page_size} pages) in {build_dir} ({expected_duration(spec.name)}); log: {log}")
            _configure(tree, build_dir, fragments, spec, log)
            configured.write_text("ok\n")
        else:
            # A user's tree: kbuild decides what changed since the last run.
            _say(f"bringing the build of {tree} up to date (incremental); log: {log}")
        make = _make_argv(tree, build_dir, spec)
        objects = _run_logged(make + [spec.image_target, "modules_prepare"], log,
                              f"make {spec.image_target}", progress=True,
                              expected=expected_objects(spec.name))
        release = subprocess.run(make[:-1] + ["-s", "kernelrelease"], capture_output=True,
                                 text=True).stdout.strip().splitlines()
        image = build_dir / spec.image_path
        if not image.is_file():
            raise KernelBuildError(f"build finished but {image} is missing; log: {log}")
        build = KernelBuild(
            image=image, kdir=build_dir, release=release[-1] if release else "unknown",
            config_hash=key, arch=spec.name, page_size=page_size, image_hash=image_hash(image),
        )
        stamp.write_text(json.dumps({**build.to_json(), "objects": objects,
                                     "seconds": round(time.monotonic() - started, 1)}))
        _say(f"built {build.release} (image {build.image_hash}) in "
             f"{time.monotonic() - started:.0f} s")
        return build


def _from_stamp(stamp: Path) -> KernelBuild:
    d = json.loads(stamp.read_text())
    image = Path(d["image"])
    if not image.is_file():
        raise KernelBuildError(f"cached kernel {image} vanished; delete {stamp.parent}")
    # Hashed from the file, not the stamp: the record must name what is booted.
    return KernelBuild(image=image, kdir=Path(d["kdir"]), release=d["release"],
                       config_hash=d["config_hash"], arch=d.get("arch", "x86_64"),
                       page_size=d.get("page_size", DEFAULT_PAGE_SIZE),
                       image_hash=image_hash(image))


def _check_image(image: Path, spec: ArchSpec) -> None:
    """Refuse a file that is not a boot image of this architecture, before QEMU sees it."""
    if not image.exists():
        raise KernelBuildError(f"--kernel {image}: no such file")
    if not image.is_file():
        raise KernelBuildError(f"--kernel {image} is not a kernel image (not a regular file)")
    offset, magic = spec.image_magic
    try:
        with image.open("rb") as f:
            f.seek(offset)
            found = f.read(len(magic))
    except OSError as e:
        raise KernelBuildError(f"--kernel {image}: cannot read it: {e}") from e
    if found != magic:
        raise KernelBuildError(
            f"--kernel {image} is not a kernel image: no {spec.image_target} magic "
            f"{magic!r} at offset {offset:#x} (build one with `make {spec.image_target}`, "
            f"or leave out --kernel to build the test kernel)"
        )


def _prebuilt(image: Path, kdir: Optional[Path], spec: ArchSpec,
              page_size: str = DEFAULT_PAGE_SIZE) -> KernelBuild:
    _check_image(image, spec)
    release = "unknown"
    if kdir is not None:
        rel = kdir / "include" / "config" / "kernel.release"
        if not rel.is_file():
            raise KernelBuildError(
                f"--kdir {kdir}: not a prepared kernel build dir (no include/config/kernel.release)"
            )
        release = rel.read_text().strip()
    digest = image_hash(image)
    return KernelBuild(image=image, kdir=kdir if kdir else Path(""), release=release,
                       config_hash=digest, arch=spec.name, page_size=page_size,
                       image_hash=digest)


def cached_builds() -> Iterator[KernelBuild]:
    """Every cached build, this host's architecture first.

    A caller that takes the first 6.1 build means the one a plain run boots
    (x86_64 on x86_64), not the cross-built arm64 kernel that sorts before it.
    """
    builds = []
    for stamp in sorted((cache_root() / "build").glob("*/.dmabuf-conformance-build.json")):
        try:
            builds.append(_from_stamp(stamp))
        except (SetupError, ValueError, KeyError):
            continue
    yield from sorted(builds, key=lambda b: (b.arch != platform.machine(),
                                             b.page_size != DEFAULT_PAGE_SIZE))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.qemu.kernel",
                                 description="build or locate the dma-buf conformance test kernel")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the kernel and print its paths")
    b.add_argument("--kernel-src", type=Path, default=None,
                   help=f"kernel tree or tarball (default {DEFAULT_SOURCE_TARBALL})")
    b.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    b.add_argument("--page-size", default=DEFAULT_PAGE_SIZE,
                   help="base page size: 4k, or 16k on aarch64 (CONFIG_ARM64_16K_PAGES)")
    b.add_argument("--fragment", type=Path, default=None)
    b.add_argument("--json", action="store_true", help="print a JSON object instead")
    sub.add_parser("list", help="list cached builds")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            build = ensure_kernel(args.kernel_src, arch=args.arch, fragment=args.fragment,
                                  page_size=args.page_size)
            if args.json:
                print(json.dumps(build.to_json()))
            else:
                print(f"image={build.image}\nkdir={build.kdir}\nrelease={build.release}\n"
                      f"config_hash={build.config_hash}")
        else:
            for build in cached_builds():
                print(f"{build.arch} {build.page_size} {build.config_hash} {build.release} "
                      f"{build.image}")
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
