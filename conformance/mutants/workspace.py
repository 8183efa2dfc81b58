"""One cached kernel tree and build dir where mutants are applied, built and reverted.

The tree is a hard-linked copy of the prepared (unpacked, patched) 6.1 source,
so it costs no disk; a file is unlinked and rewritten before a patch touches
it, so the shared source is never changed.  The build dir is the one
``ensure_kernel`` gives a user's tree: built in full once, then every mutant
is one incremental kbuild (seconds: the exporter's object and the link).

After a build the changed files are restored from the pristine source with a
fresh mtime, so the next build recompiles them clean.  A journal names the
files of a patch in flight: a sweep killed mid-way leaves the tree dirty, and
the next one restores those files before anything else.

Images are kept per mutant, keyed by the patch's digest and the clean build,
so a warm sweep rebuilds nothing it has already built.  Every mutant image
shares the clean build's config and exported symbols, so the probe module
built once against the workspace's kdir loads on each of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from conformance.mutants.catalogue import Mutant
from conformance.qemu.kernel import (
    DEFAULT_SOURCE_TARBALL,
    KernelBuild,
    KernelBuildError,
    _FileLock,
    _from_stamp,
    cache_root,
    ensure_kernel,
    image_hash,
    prepared_tree,
)

JOURNAL = "applied.json"


def _say(msg: str) -> None:
    print(f"[mutants] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class MutantBuild:
    mutant: str
    kernel: KernelBuild  # image: the mutant's; kdir: the workspace's (the probe builds there)
    seconds: float
    cached: bool


class Workspace:
    """The mutant workspace of one kernel source tarball."""

    def __init__(self, tarball: Path = DEFAULT_SOURCE_TARBALL) -> None:
        self.tarball = Path(tarball)
        self.pristine = prepared_tree(self.tarball)
        # Keyed by the prepared source (its dir name is the hash of tarball + patches).
        self.root = cache_root() / "mutants" / self.pristine.parent.name
        self.tree = self.root / "src" / self.pristine.name
        self.images = self.root / "images"
        self._lock = self.root.with_suffix(".lock")

    # -- the tree ----------------------------------------------------------------------

    def _ensure_tree(self) -> None:
        if (self.tree / "Makefile").is_file():
            return
        _say(f"making the mutant tree {self.tree} (hard links to {self.pristine})")
        tmp = self.tree.with_name(self.tree.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["cp", "-al", str(self.pristine), str(tmp)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise KernelBuildError(f"cannot copy {self.pristine} to {tmp}: {r.stderr.strip()}")
        tmp.rename(self.tree)

    def _restore(self, files: list[str]) -> None:
        """Put the pristine content back (a new inode, a new mtime: kbuild rebuilds it)."""
        for rel in files:
            dest = self.tree / rel
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            shutil.copyfile(self.pristine / rel, dest)
            os.utime(dest)
        (self.root / JOURNAL).unlink(missing_ok=True)

    def _recover(self) -> None:
        journal = self.root / JOURNAL
        if journal.exists():
            files = json.loads(journal.read_text()).get("files", [])
            _say(f"restoring {len(files)} file(s) a stopped sweep left patched: {files}")
            self._restore(files)

    def _apply(self, mutant: Mutant) -> None:
        missing = [f for f in mutant.files if not (self.pristine / f).is_file()]
        if missing:
            raise KernelBuildError(f"mutant {mutant.name}: {mutant.path.name} changes "
                                   f"{missing}, not in {self.pristine.name}")
        (self.root / JOURNAL).write_text(json.dumps({"mutant": mutant.name,
                                                     "files": list(mutant.files)}))
        for rel in mutant.files:
            # Break the hard link: the pristine tree is shared with the suite's kernel.
            dest = self.tree / rel
            data = dest.read_bytes()
            dest.unlink()
            dest.write_bytes(data)
        r = subprocess.run(["patch", "-d", str(self.tree), "-p1", "--fuzz=0",
                            "--no-backup-if-mismatch", "-i", str(mutant.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self._restore(list(mutant.files))
            raise KernelBuildError(f"mutant {mutant.name}: {mutant.path.name} does not apply to "
                                   f"{self.pristine.name}:\n{(r.stdout + r.stderr).strip()}")

    # -- builds --------------------------------------------------------------------------

    def _build(self) -> KernelBuild:
        return ensure_kernel(self.tree)

    def clean(self) -> KernelBuild:
        """The workspace's unpatched kernel (built in full the first time)."""
        with _FileLock(self._lock):
            self._ensure_tree()
            self._recover()
            stamp = self.images / "clean.json"
            if stamp.exists():
                build = _load(stamp)
                if build is not None:
                    return build
            build = self._build()
            return self._keep(build, "clean", stamp)

    def build(self, mutant: Mutant) -> MutantBuild:
        """The mutant's kernel: from the image cache, or applied, built and reverted."""
        clean = self.clean()
        stamp = self.images / f"{mutant.name}-{mutant.digest}-{clean.image_hash}.json"
        started = time.monotonic()
        cached = _load(stamp)
        if cached is not None:
            return MutantBuild(mutant.name, cached, 0.0, True)
        with _FileLock(self._lock):
            self._recover()
            self._apply(mutant)
            try:
                build = self._build()
            except KernelBuildError as e:
                raise KernelBuildError(f"mutant {mutant.name} does not build: {e}") from e
            finally:
                self._restore(list(mutant.files))
            kept = self._keep(build, stamp.stem, stamp)
        if kept.image_hash == clean.image_hash:
            raise KernelBuildError(f"mutant {mutant.name}: the image equals the clean one "
                                   "(the patched code is not built into this kernel's config)")
        return MutantBuild(mutant.name, replace(kept, kdir=clean.kdir),
                           round(time.monotonic() - started, 1), False)

    def _keep(self, build: KernelBuild, stem: str, stamp: Path) -> KernelBuild:
        self.images.mkdir(parents=True, exist_ok=True)
        image = self.images / f"{stem}.bzImage"
        shutil.copyfile(build.image, image)
        kept = replace(build, image=image, image_hash=image_hash(image))
        stamp.write_text(json.dumps(kept.to_json()))
        return kept


def _load(stamp: Path) -> KernelBuild | None:
    """The build a stamp names, or None when there is none (yet) or its image is gone."""
    try:
        return _from_stamp(stamp)
    except (OSError, ValueError, KeyError, KernelBuildError):
        return None
