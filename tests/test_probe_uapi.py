"""The ctypes mirror (conformance/probe/uapi.py) agrees with qemu/probe/dmabuf_probe.h.

A C program includes the header and prints every request number, struct size,
field offset and constant; each must equal the Python value.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.probe import uapi

HEADER = Path(__file__).resolve().parent.parent / "qemu" / "probe" / "dmabuf_probe.h"


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "dmabuf_probe.h"',
        "int main(void) {",
        '  printf("{\\n");',
    ]
    for req in uapi.Request:
        lines.append(f'  printf("\\"{req.name}\\": %llu,\\n", (unsigned long long){req.name});')
    for name in uapi.CONSTANTS:
        lines.append(f'  printf("\\"{name}\\": %llu,\\n", (unsigned long long){name});')
    for cname, struct in uapi.STRUCTS.items():
        lines.append(f'  printf("\\"sizeof {cname}\\": %zu,\\n", sizeof(struct {cname}));')
        for field, *_ in struct._fields_:
            lines.append(
                f'  printf("\\"offsetof {cname}.{field}\\": %zu,\\n", '
                f"offsetof(struct {cname}, {field}));"
            )
    lines += ['  printf("\\"end\\": 0\\n}\\n");', "  return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def from_c(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to compile qemu/probe/dmabuf_probe.h")
    work = tmp_path_factory.mktemp("probe_uapi")
    src = work / "layout.c"
    src.write_text(_c_program())
    exe = work / "layout"
    subprocess.run(
        [cc, "-Wall", "-Werror", "-I", str(HEADER.parent), str(src), "-o", str(exe)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(subprocess.run([str(exe)], check=True, capture_output=True).stdout)


def test_request_numbers_match_header(from_c: dict[str, int]) -> None:
    for req in uapi.Request:
        assert from_c[req.name] == int(req), req.name


def test_constants_match_header(from_c: dict[str, int]) -> None:
    for name, value in uapi.CONSTANTS.items():
        assert from_c[name] == value, name


def test_struct_layouts_match_header(from_c: dict[str, int]) -> None:
    for cname, struct in uapi.STRUCTS.items():
        assert from_c[f"sizeof {cname}"] == ctypes.sizeof(struct), cname
        for field, *_ in struct._fields_:
            offset = getattr(struct, field).offset
            assert from_c[f"offsetof {cname}.{field}"] == offset, f"{cname}.{field}"


def test_every_header_item_is_mirrored() -> None:
    """A struct, ioctl or constant added to the header without a mirror fails here."""
    text = HEADER.read_text()
    structs = set(re.findall(r"^struct (\w+) \{", text, re.M))
    assert structs == set(uapi.STRUCTS)
    defines = set(re.findall(r"^#define (DMABUF_PROBE_\w+)\s", text, re.M))
    mirrored = {r.name for r in uapi.Request} | set(uapi.CONSTANTS)
    assert defines == mirrored


def test_struct_field_names_match_header() -> None:
    text = HEADER.read_text()
    for cname, struct in uapi.STRUCTS.items():
        body = re.search(rf"^struct {cname} \{{(.*?)^\}};", text, re.M | re.S)
        assert body, cname
        fields = re.findall(r"^\s*(?:__[us]\d+|char)\s+(\w+)", body.group(1), re.M)
        assert fields == [f for f, *_ in struct._fields_], cname
