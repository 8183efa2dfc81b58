"""Build (or find) the test kernel, cached outside the repository.

The build directory is keyed by everything that changes the result: the
source (tarball identity, or tree path + git HEAD), the config fragment, the
patches in ``qemu/patches/`` in order, and the architecture.  A file lock makes
concurrent pytest-xdist workers build once; the others wait and reuse it.

``KernelBuild.kdir`` is the ``O=`` build directory, prepared with
``modules_prepare`` so out-of-tree modules build with
``make -C qemu/probe KDIR=<kdir>``.

CLI: ``python -m conformance.qemu.kernel build [--kernel-src PATH] [--arch A]``
prints the image and kdir paths.
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
from typing import Iterator, Optional, Sequence

from conformance.errors import SetupError
from conformance.qemu.arch import ArchSpec, get_arch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FRAGMENT = REPO_ROOT / "qemu" / "config" / "dmabuf-conformance.config"
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
    src = src.resolve()
    if src.is_file():
        st = src.stat()
        return f"tarball:{src}:{st.st_size}:{int(st.st_mtime)}"
    head = "no-git"
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"tree:{src}:{head}"


def _patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch")) if PATCH_DIR.is_dir() else []


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def build_key(src: Path, fragment: Path, arch: ArchSpec) -> str:
    parts = [_source_identity(src).encode(), fragment.read_bytes(), arch.name.encode()]
    parts += [p.name.encode() + b"\0" + p.read_bytes() for p in _patches()]
    return _hash(*parts)


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


def _run_logged(argv: Sequence[str], log: Path, what: str, progress: bool = False) -> None:
    """Run ``argv`` appending to ``log``; on failure raise with the log tail."""
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
            if progress and line.lstrip().startswith(("CC ", "LD ", "AR ", "AS ")):
                compiled += 1
                now = time.monotonic()
                if now - last_report >= 15:
                    _say(f"{what}: {compiled} objects, {now - started:.0f} s")
                    last_report = now
        rc = proc.wait()
    if rc != 0:
        raise KernelBuildError(
            f"{what} failed (exit {rc}); full log: {log}\n--- last lines ---\n{_tail(log)}"
        )


# -- source trees ----------------------------------------------------------------


def _prepare_tarball_tree(tarball: Path, log: Path) -> Path:
    """Unpack the tarball and apply the patches once, in a dir keyed by both."""
    parts = [_source_identity(tarball).encode()]
    parts += [p.name.encode() + b"\0" + p.read_bytes() for p in _patches()]
    root = cache_root() / "src" / _hash(*parts)
    done = root / ".ready"
    with _FileLock(root.with_suffix(".lock")):
        if done.exists():
            return _single_subdir(root)
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        _say(f"unpacking {tarball} (about 15 s)")
        try:
            with tarfile.open(tarball) as tf:
                if sys.version_info >= (3, 12):
                    tf.extractall(root, filter="fully_trusted")
                else:
                    tf.extractall(root)
        except (OSError, tarfile.TarError) as e:
            raise KernelBuildError(f"cannot unpack kernel source {tarball}: {e}") from e
        tree = _single_subdir(root)
        for patch in _patches():
            _say(f"applying {patch.name}")
            _run_logged(["patch", "-d", str(tree), "-p1", "-i", str(patch)], log,
                        f"applying {patch.name}")
        done.write_text("ok\n")
        return tree


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
    for patch in _patches():
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


def _configure(tree: Path, kdir: Path, fragment: Path, arch: ArchSpec, log: Path) -> None:
    make = _make_argv(tree, kdir, arch)
    _run_logged(make + ["tinyconfig"], log, "make tinyconfig")
    config = kdir / ".config"
    # Later assignments win in kconfig, so appending the fragment merges it.
    with config.open("a") as f:
        f.write("\n# --- " + fragment.name + " ---\n" + fragment.read_text())
    _run_logged(make + ["olddefconfig"], log, "make olddefconfig")
    bad = missing_options(parse_config(fragment.read_text()), parse_config(config.read_text()))
    if bad:
        raise KernelBuildError(
            "these options from " + str(fragment) + " did not survive olddefconfig "
            "(a dependency is missing or the option does not exist in this kernel): "
            + ", ".join(bad)
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
) -> KernelBuild:
    """The test kernel: prebuilt (``kernel`` + ``kdir``), from the cache, or built now."""
    spec = get_arch(arch)
    if kernel is not None:
        return _prebuilt(Path(kernel), Path(kdir) if kdir else None, spec)
    fragment = Path(fragment) if fragment else DEFAULT_FRAGMENT
    if not fragment.is_file():
        raise KernelBuildError(f"config fragment {fragment} does not exist")
    src = Path(kernel_src) if kernel_src else DEFAULT_SOURCE_TARBALL
    if not src.exists():
        hint = ("install it with `apt-get install linux-source-6.1` (or run "
                "qemu/setup-host.sh), or name a tree with --kernel-src PATH")
        raise KernelBuildError(f"kernel source {src} not found; {hint}")
    if src.is_dir():
        _check_user_tree(src)
    key = build_key(src, fragment, spec)
    build_dir = cache_root() / "build" / f"{spec.name}-{key}"
    stamp = build_dir / ".dmabuf-conformance-build.json"
    with _FileLock(build_dir.with_suffix(".lock")):
        if stamp.exists():
            return _from_stamp(stamp)
        build_dir.mkdir(parents=True, exist_ok=True)
        log = build_dir / "build.log"
        log.write_text(f"dmabuf-conformance kernel build {key} for {spec.name}\n")
        tree = _prepare_tarball_tree(src, log) if src.is_file() else src
        started = time.monotonic()
        _say(f"building the test kernel in {build_dir} (about 5 min on 2 cores); log: {log}")
        _configure(tree, build_dir, fragment, spec, log)
        make = _make_argv(tree, build_dir, spec)
        _run_logged(make + [spec.image_target, "modules_prepare"], log,
                    f"make {spec.image_target}", progress=True)
        release = subprocess.run(make[:-1] + ["-s", "kernelrelease"], capture_output=True,
                                 text=True).stdout.strip().splitlines()
        build = KernelBuild(
            image=build_dir / spec.image_path, kdir=build_dir,
            release=release[-1] if release else "unknown", config_hash=key, arch=spec.name,
        )
        if not build.image.is_file():
            raise KernelBuildError(f"build finished but {build.image} is missing; log: {log}")
        stamp.write_text(json.dumps({**build.to_json(),
                                     "seconds": round(time.monotonic() - started, 1)}))
        _say(f"built {build.release} in {time.monotonic() - started:.0f} s")
        return build


def _from_stamp(stamp: Path) -> KernelBuild:
    d = json.loads(stamp.read_text())
    build = KernelBuild(image=Path(d["image"]), kdir=Path(d["kdir"]), release=d["release"],
                        config_hash=d["config_hash"], arch=d.get("arch", "x86_64"))
    if not build.image.is_file():
        raise KernelBuildError(f"cached kernel {build.image} vanished; delete {stamp.parent}")
    return build


def _prebuilt(image: Path, kdir: Optional[Path], spec: ArchSpec) -> KernelBuild:
    if not image.is_file():
        raise KernelBuildError(f"--kernel {image}: no such file")
    release = "unknown"
    if kdir is not None:
        rel = kdir / "include" / "config" / "kernel.release"
        if not rel.is_file():
            raise KernelBuildError(
                f"--kdir {kdir}: not a prepared kernel build dir (no include/config/kernel.release)"
            )
        release = rel.read_text().strip()
    h = hashlib.sha256()
    with image.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return KernelBuild(image=image, kdir=kdir if kdir else Path(""), release=release,
                       config_hash=h.hexdigest()[:16], arch=spec.name)


def cached_builds() -> Iterator[KernelBuild]:
    for stamp in sorted((cache_root() / "build").glob("*/.dmabuf-conformance-build.json")):
        try:
            yield _from_stamp(stamp)
        except (SetupError, ValueError, KeyError):
            continue


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.qemu.kernel",
                                 description="build or locate the dma-buf conformance test kernel")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the kernel and print its paths")
    b.add_argument("--kernel-src", type=Path, default=None,
                   help=f"kernel tree or tarball (default {DEFAULT_SOURCE_TARBALL})")
    b.add_argument("--arch", default="x86_64")
    b.add_argument("--fragment", type=Path, default=None)
    b.add_argument("--json", action="store_true", help="print a JSON object instead")
    sub.add_parser("list", help="list cached builds")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            build = ensure_kernel(args.kernel_src, arch=args.arch, fragment=args.fragment)
            if args.json:
                print(json.dumps(build.to_json()))
            else:
                print(f"image={build.image}\nkdir={build.kdir}\nrelease={build.release}\n"
                      f"config_hash={build.config_hash}")
        else:
            for build in cached_builds():
                print(f"{build.arch} {build.config_hash} {build.release} {build.image}")
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
