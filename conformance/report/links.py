"""Where each contract comes from: the seed threads and kernel documents behind a case family.

Kept as data so a reviewer can check a link without reading code.  Seed
threads link to lore.kernel.org (by Message-ID where the seed has one, else a
subject search) and, when the repository sits next to ``../shared/seeds``, to
the local copy the scenario was written from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

ELIXIR = "https://elixir.bootlin.com/linux/v6.1/source/"
DMA_BUF_DOC = "https://docs.kernel.org/driver-api/dma-buf.html"
DMA_API_DOC = "https://docs.kernel.org/core-api/dma-api.html"


@dataclass(frozen=True)
class Seed:
    file: str  # under ../shared/seeds
    subject: str
    message_id: str = ""

    @property
    def lore(self) -> str:
        if self.message_id:
            return f"https://lore.kernel.org/r/{self.message_id}"
        return f"https://lore.kernel.org/all/?q={quote_plus('s:' + repr(self.subject))}"


SEEDS: dict[str, Seed] = {
    "000": Seed(
        "000_bc2983204c83d39d.txt",
        "android: ion: How to properly clean caches for uncached allocations",
        "alpine.DEB.2.10.1811011454430.23412@lmark-linux.qualcomm.com",
    ),
    "001": Seed(
        "001_3b55f700de57069e.txt",
        "staging: android: ion: Add implementation of dma_buf_vmap and dma_buf_vunmap",
    ),
    "002": Seed("002_bff4fa019dbceee7.txt", "Ion caching (yet again) proof of concept"),
    "003": Seed(
        "003_0ac168e2dfa7d817.txt",
        "dma-buf: heaps: Add heap helpers",
        "20190624194908.121273-3-john.stultz@linaro.org",
    ),
    "004": Seed("004_0c76b40a6214c2da.txt", "dma-buf: add dynamic caching of sg_table"),
}

# family -> (seed ids, (link name, url) of kernel sources and docs)
FAMILY_SOURCES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "alloc": ((), (
        ("include/uapi/linux/dma-heap.h", ELIXIR + "include/uapi/linux/dma-heap.h"),
        ("drivers/dma-buf/dma-heap.c", ELIXIR + "drivers/dma-buf/dma-heap.c"),
    )),
    "mmap": ((), (
        ("dma-buf: CPU access", DMA_BUF_DOC + "#cpu-access-to-dma-buffer-objects"),
        ("drivers/dma-buf/dma-buf.c", ELIXIR + "drivers/dma-buf/dma-buf.c"),
    )),
    "sync": ((), (
        ("include/uapi/linux/dma-buf.h", ELIXIR + "include/uapi/linux/dma-buf.h"),
        ("dma-buf: CPU access", DMA_BUF_DOC + "#cpu-access-to-dma-buffer-objects"),
    )),
    "uapi": ((), (
        ("dma-buf: userspace interface notes", DMA_BUF_DOC + "#userspace-interface-notes"),
        ("include/uapi/linux/dma-buf.h", ELIXIR + "include/uapi/linux/dma-buf.h"),
    )),
    "zero_fill": (("000",), (
        ("drivers/dma-buf/heaps/system_heap.c", ELIXIR + "drivers/dma-buf/heaps/system_heap.c"),
    )),
    "leak": ((), (("dma-buf: shared DMA buffers", DMA_BUF_DOC),)),
    "attach_order_cmo": (("004", "002", "000"), (
        ("dma-buf: struct dma_buf_ops (map_dma_buf)", DMA_BUF_DOC + "#c.dma_buf_ops"),
    )),
    "kmap_contract": (("001", "003"), (
        ("dma_buf_vmap kerneldoc", DMA_BUF_DOC + "#c.dma_buf_vmap"),
    )),
    "negative_kmap_cnt": (("001",), (
        ("dma_buf_end_cpu_access kerneldoc", DMA_BUF_DOC + "#c.dma_buf_end_cpu_access"),
    )),
    "vmap_aliasing": (("003",), (
        ("cachetlb: flush_kernel_vmap_range", "https://docs.kernel.org/core-api/cachetlb.html"),
    )),
    "streaming_dma": (("000", "001"), (
        ("DMA API: streaming DMA mappings (dma_sync_*)", DMA_API_DOC),
    )),
    "dma_constraints": (("002",), (
        ("DMA API: dma_get_max_seg_size", DMA_API_DOC),
    )),
    "exporter_specific": ((), (
        ("drivers/dma-buf/udmabuf.c", ELIXIR + "drivers/dma-buf/udmabuf.c"),
        ("drivers/gpu/drm/vgem/vgem_drv.c", ELIXIR + "drivers/gpu/drm/vgem/vgem_drv.c"),
    )),
    # issue 11
    "size_ladder": (("000",), (
        ("drivers/dma-buf/heaps/system_heap.c", ELIXIR + "drivers/dma-buf/heaps/system_heap.c"),
    )),
    "two_importers": (("002", "004"), (
        ("dma-buf: struct dma_buf_ops (map_dma_buf)", DMA_BUF_DOC + "#c.dma_buf_ops"),
        ("drivers/dma-buf/heaps/system_heap.c", ELIXIR + "drivers/dma-buf/heaps/system_heap.c"),
    )),
}


def seeds_dir(repo_root: Path) -> Path:
    return repo_root.parent / "shared" / "seeds"


def family_links(family: str, repo_root: Path | None = None) -> list[tuple[str, str]]:
    """``(name, url)`` links for a case family; unknown families get none."""
    seed_ids, docs = FAMILY_SOURCES.get(family, ((), ()))
    links: list[tuple[str, str]] = []
    for sid in seed_ids:
        seed = SEEDS[sid]
        links.append((f"seed {sid}: {seed.subject}", seed.lore))
        if repo_root is not None:
            local = seeds_dir(repo_root) / seed.file
            if local.is_file():
                links.append((f"seed {sid} (local copy)", local.resolve().as_uri()))
    links.extend(docs)
    return links
