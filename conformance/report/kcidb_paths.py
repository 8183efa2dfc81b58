"""KCIDB test paths for conformance results, and back.

A KCIDB path is dot-separated nodes of ``[A-Za-z0-9_-]``, so an exporter name
(``heap:system``) or a case id (``CMO-002[TO_DEVICE]``) cannot be a node as is.
The mapping keeps the common ids readable and is reversible
(``parse_kcidb_path(kcidb_path(e, c)) == (e, c)`` for every string)::

    heap:system, CMO-001              dmabuf_conformance.heap_system.CMO-001
    heap:default_cma_region, ZERO-001 dmabuf_conformance.heap_default__cma__region.ZERO-001
    udmabuf, CMO-002[TO_DEVICE]       dmabuf_conformance.udmabuf.CMO-002.TO__DEVICE
    vgem, ALLOC-008[O_RDWR|O_CLOEXEC] dmabuf_conformance.vgem.ALLOC-008.O__RDWR_oO__CLOEXEC

* The exporter node is ``<kind>_<name>`` for ``<kind>:<name>`` (the kind, e.g.
  ``heap``, is letters, digits and ``-``), the bare name for an exporter
  without a kind (``udmabuf``), and ``_`` followed by the escaped whole name
  otherwise.
* A parametrized case ``BASE[param]`` is two nodes, ``BASE.param``, so KCIDB's
  tree groups a case's parametrizations under it; an unparametrized case is one.
* Inside a node, letters, digits and ``-`` stand for themselves and ``_``
  starts an escape: ``__`` is ``_``, ``_c`` ``:``, ``_d`` ``.``, ``_p`` ``+``,
  ``_o`` ``|``, ``_s`` a space, ``_b`` ``[``, ``_e`` ``]``, ``_a`` ``@`` (a
  farm's ``heap:system@board1``) and ``_x<hex>_`` any other character.
  ``_`` is the escape rather than kept as itself because it is the only other
  character a node allows.
"""

from __future__ import annotations

import re

ROOT = "dmabuf_conformance"

_CODES = {"_": "_", ":": "c", ".": "d", "+": "p", "|": "o", " ": "s", "[": "b", "]": "e",
          "@": "a"}
_DECODES = {code: char for char, code in _CODES.items()}
_PLAIN = re.compile(r"[A-Za-z0-9-]")
_KIND = re.compile(r"[A-Za-z0-9-]+")
_PARAMETRIZED = re.compile(r"([^\[\]]+)\[(.+)\]")


class PathError(ValueError):
    """A string that ``kcidb_path`` cannot have produced."""


def escape_node(text: str) -> str:
    out = []
    for char in text:
        if _PLAIN.fullmatch(char):
            out.append(char)
        elif char in _CODES:
            out.append("_" + _CODES[char])
        else:
            out.append(f"_x{ord(char):x}_")
    return "".join(out)


def unescape_node(node: str) -> str:
    out, i = [], 0
    while i < len(node):
        char = node[i]
        if char != "_":
            out.append(char)
            i += 1
            continue
        code = node[i + 1:i + 2]
        if code in _DECODES:
            out.append(_DECODES[code])
            i += 2
        elif code == "x":
            end = node.find("_", i + 2)
            digits = node[i + 2:end] if end > 0 else ""
            if not re.fullmatch(r"[0-9a-f]+", digits):
                raise PathError(f"bad escape in {node!r} at {i}")
            out.append(chr(int(digits, 16)))
            i = end + 1
        else:
            raise PathError(f"bad escape in {node!r} at {i}")
    return "".join(out)


def exporter_node(exporter: str) -> str:
    kind, colon, name = exporter.partition(":")
    if colon and _KIND.fullmatch(kind):
        return f"{kind}_{escape_node(name)}"
    if not colon and _KIND.fullmatch(exporter):
        return exporter
    return "_" + escape_node(exporter)


def exporter_of_node(node: str) -> str:
    if node.startswith("_"):
        return unescape_node(node[1:])
    kind, sep, name = node.partition("_")
    return f"{kind}:{unescape_node(name)}" if sep else node


def case_nodes(case_id: str) -> list[str]:
    match = _PARAMETRIZED.fullmatch(case_id)
    if match:
        return [escape_node(match.group(1)), escape_node(match.group(2))]
    return [escape_node(case_id)]


def kcidb_path(exporter: str, case_id: str) -> str:
    """``dmabuf_conformance.<exporter node>.<case node(s)>``."""
    return ".".join([ROOT, exporter_node(exporter), *case_nodes(case_id)])


def parse_kcidb_path(path: str) -> tuple[str, str]:
    """The (exporter, case id) ``kcidb_path`` made ``path`` from."""
    nodes = path.split(".")
    if nodes[0] != ROOT or len(nodes) not in (3, 4) or not all(nodes):
        raise PathError(f"{path!r} is not a {ROOT} test path")
    exporter = exporter_of_node(nodes[1])
    case = unescape_node(nodes[2])
    if len(nodes) == 4:
        case += f"[{unescape_node(nodes[3])}]"
    return exporter, case

