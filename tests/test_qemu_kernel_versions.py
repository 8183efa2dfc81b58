"""Kernel builds across versions: version-scoped fragments and patches, a user's tree
rebuilt on every run, the image hash, and a clear refusal of what is not a kernel image."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

import conformance.qemu.kernel as kernel
from conformance.errors import SetupError
from conformance.qemu.arch import get_arch
from conformance.qemu.kernel import (
    DEFAULT_FRAGMENT,
    KernelBuildError,
    ensure_kernel,
    fragments_for,
    in_range,
    parse_config,
    parse_kernels,
    tarball_version,
)

ION_OPTIONS = {"CONFIG_ION", "CONFIG_ION_SYSTEM_HEAP", "CONFIG_ION_CMA_HEAP"}


def _requested(version: tuple[int, int]) -> dict[str, str]:
    out: dict[str, str] = {}
    for fragment in fragments_for(version):
        out.update(parse_config(fragment.read_text()))
    return out


def test_ranges_parse_and_bind() -> None:
    assert parse_kernels("<5.11") == [("<", (5, 11))]
    bounds = parse_kernels(">=5.11, <6.2")
    assert in_range((6, 1), bounds) and not in_range((5, 10), bounds)
    assert not in_range((6, 2), bounds)
    assert in_range((5, 10), parse_kernels("5.10"))
    with pytest.raises(KernelBuildError, match="bad kernel range"):
        parse_kernels("newer than 5")


def test_staging_ion_is_requested_on_5_10_only() -> None:
    # ION left staging in 5.11: asking a 6.x olddefconfig for it would fail the
    # "every requested option survived" check, so the request is scoped.
    assert ION_OPTIONS <= set(_requested((5, 10)))
    for later in ((5, 11), (6, 1), (6, 12)):
        assert not ION_OPTIONS & set(_requested(later))
    # 6.1 and 6.12 get the same fragments: the main one and x86_64's boot options.
    assert fragments_for((6, 1)) == fragments_for((6, 12)) == [
        DEFAULT_FRAGMENT, DEFAULT_FRAGMENT.parent / "x86_64-boot.config"]


def test_the_block_layer_is_requested_where_9p_root_needs_it() -> None:
    # Before 5.14 a 9p root mounts only through mount_block_root (CONFIG_BLOCK).
    assert _requested((5, 10)).get("CONFIG_BLOCK") == "y"
    assert "CONFIG_BLOCK" not in _requested((5, 14))


def test_a_user_fragment_is_taken_as_it_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine.config"
    mine.write_text("CONFIG_A=y\n")
    assert fragments_for((5, 10), mine) == [mine]


def test_a_version_variant_replaces_the_patch_of_the_same_name() -> None:
    names = {p.name for p in kernel._patches((6, 1))}
    assert all(p.parent == kernel.PATCH_DIR for p in kernel._patches((6, 1)))
    for version, variant_dir in (((5, 10), "5.10"), ((6, 12), "6.12")):
        chosen = kernel._patches(version)
        assert {p.name for p in chosen} == names  # the same patch, another context
        assert all(p.parent.name == variant_dir for p in chosen if p.name.startswith("0001-"))


@pytest.mark.parametrize("series", ["5.10", "6.1", "6.12"])
def test_the_patches_apply_to_the_debian_source(series: str, tmp_path: Path) -> None:
    tarball = Path(f"/usr/src/linux-source-{series}.tar.xz")
    if not tarball.is_file():
        pytest.skip(f"{tarball} not installed (qemu/setup-host.sh --with-matrix)")
    version = tarball_version(tarball)
    assert f"{version[0]}.{version[1]}" == series
    for patch in kernel._patches(version):
        target = _patched_file(patch)
        with tarfile.open(tarball) as tf:
            member = next(m for m in tf if m.name.endswith("/" + target))
            f = tf.extractfile(member)
            assert f is not None
            dest = tmp_path / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read())
        r = subprocess.run(["patch", "-d", str(tmp_path), "-p1", "--dry-run", "-F0", "-i",
                            str(patch)], capture_output=True, text=True)
        assert r.returncode == 0, f"{patch} on {series}: {r.stdout}{r.stderr}"


def _patched_file(patch: Path) -> str:
    for line in patch.read_text().splitlines():
        if line.startswith("+++ b/"):
            return line[len("+++ b/"):].strip()
    raise AssertionError(f"{patch}: no +++ line")


def test_tarball_version_is_read_without_unpacking(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMABUF_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    tarball = tmp_path / "linux.tar.xz"
    with tarfile.open(tarball, "w:xz") as tf:
        data = b"# SPDX\nVERSION = 5\nPATCHLEVEL = 10\nSUBLEVEL = 223\n"
        info = tarfile.TarInfo("linux-source-5.10/Makefile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert tarball_version(tarball) == (5, 10)
    assert tarball_version(tarball) == (5, 10)  # the second answer comes from the memo


def _source_tarball(path: Path) -> Path:
    with tarfile.open(path, "w:xz") as tf:
        for name, data in (("linux-source-6.1/Makefile", b"VERSION = 6\nPATCHLEVEL = 1\n"),
                           ("linux-source-6.1/drivers/dma-buf/udmabuf.c", b"/* udmabuf */\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(params=["gnu-tar", "tarfile"])
def unpack_root(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory to unpack into, with GNU tar or, with tar hidden, tarfile."""
    if request.param == "tarfile":
        monkeypatch.setattr(kernel.shutil, "which", lambda name: None)
    elif not (kernel.shutil.which("tar") and kernel.shutil.which("xz")):
        pytest.skip("no tar and xz on this machine")
    root = tmp_path / "src"
    root.mkdir()
    return root


def test_a_source_tarball_unpacks_with_tar_or_without_it(tmp_path: Path, unpack_root: Path) -> None:
    kernel._unpack(_source_tarball(tmp_path / "linux-source-6.1.tar.xz"), unpack_root)
    assert (unpack_root / "linux-source-6.1" / "drivers/dma-buf/udmabuf.c").read_bytes() == (
        b"/* udmabuf */\n")


def test_a_broken_source_tarball_is_named(tmp_path: Path, unpack_root: Path) -> None:
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    tarball.write_bytes(_source_tarball(tmp_path / "good.tar.xz").read_bytes()[:40])
    with pytest.raises(KernelBuildError, match="cannot unpack kernel source .*linux-source-6.1"):
        kernel._unpack(tarball, unpack_root)


# -- a user's tree: kbuild is the cache ------------------------------------------------

FAKE_MAKE = r"""#!/bin/sh
# Stands in for the kernel's make: records each call, and "builds" an image
# whose bytes are the tree's source file, so an edit changes the image.
echo "$*" >> "$FAKE_MAKE_LOG"
O=; TREE=
while [ $# -gt 0 ]; do
    case "$1" in
        O=*) O=${1#O=} ;;
        -C) shift; TREE=$1 ;;
    esac
    case "$1" in
        tinyconfig) : > "$O/.config" ;;
        olddefconfig) : ;;
        kernelrelease) echo 6.1.0-fake; exit 0 ;;
        bzImage)
            mkdir -p "$O/arch/x86/boot"
            { head -c 514 /dev/zero; printf 'HdrS'; cat "$TREE/exporter.c"; } \
                > "$O/arch/x86/boot/bzImage" ;;
    esac
    shift
done
exit 0
"""


@pytest.fixture
def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (tree / "Kconfig").write_text("")
    (tree / "exporter.c").write_text("v1\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(FAKE_MAKE)
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MAKE_LOG", str(tmp_path / "make.log"))
    monkeypatch.setenv("DMABUF_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    return tree


def _image_builds(tmp_path: Path) -> int:
    return sum("bzImage" in line for line in (tmp_path / "make.log").read_text().splitlines())


def test_an_edited_user_tree_is_rebuilt_and_hashed_anew(fake_tree: Path, tmp_path: Path) -> None:
    first = ensure_kernel(fake_tree)
    assert _image_builds(tmp_path) == 1
    assert first.image_hash == kernel.image_hash(first.image)
    # An uncommitted edit, in a tree without git: nothing a cache key could see.
    (fake_tree / "exporter.c").write_text("v2: the vendor's fix\n")
    second = ensure_kernel(fake_tree)
    assert _image_builds(tmp_path) == 2, "the tree was not rebuilt"
    assert second.kdir == first.kdir  # the same build dir: kbuild's incremental build
    assert second.image_hash != first.image_hash
    configs = sum("tinyconfig" in line for line in (tmp_path / "make.log").read_text().splitlines())
    assert configs == 1, "a rebuild must not reconfigure from scratch"


def test_a_tarball_build_is_reused_from_the_cache(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMABUF_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    tarball = Path("/usr/src/linux-source-6.1.tar.xz")
    if not tarball.is_file():
        pytest.skip("linux-source-6.1 not installed")
    # A stamp for the key this tarball has: the build must come from it, untouched.
    version = tarball_version(tarball)
    key = kernel.build_key(tarball, fragments_for(version), get_arch("x86_64"), version)
    build_dir = tmp_path / "cache" / "build" / f"x86_64-{key}"
    image = build_dir / "arch/x86/boot/bzImage"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\0" * 514 + b"HdrS")
    (build_dir / ".dmabuf-conformance-build.json").write_text(
        f'{{"image": "{image}", "kdir": "{build_dir}", "release": "6.1.192", '
        f'"config_hash": "{key}", "arch": "x86_64"}}')
    build = ensure_kernel(tarball)
    assert build.image == image and build.image_hash == kernel.image_hash(image)


# -- what is not a kernel image ------------------------------------------------------


@pytest.mark.parametrize("what", ["/dev/null", "zeros", "dir"])
def test_not_a_kernel_image_is_refused_clearly(what: str, tmp_path: Path) -> None:
    path = Path(what)
    if what == "zeros":
        path = tmp_path / "bzImage"
        path.write_bytes(b"\0" * 4096)
    elif what == "dir":
        path = tmp_path
    with pytest.raises(SetupError, match=r"--kernel .* is not a kernel image"):
        ensure_kernel(kernel=path)


def test_a_bzimage_header_is_accepted(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 64)
    build = ensure_kernel(kernel=image)
    assert build.image == image and len(build.image_hash) == 16
    with pytest.raises(SetupError, match="not a kernel image: no Image magic"):
        ensure_kernel(kernel=image, arch="aarch64")
