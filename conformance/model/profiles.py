"""Model exporters as data: the reference, per-kind stand-ins, and one faulty profile per bug.

A profile is a set of switches the model's exporter obeys.  ``reference``
keeps every rule (it is the 6.1 system heap made strict: it also honours the
importer's DMA constraints).  The ``reference-<kind>`` profiles copy what
the upstream 6.1 driver of that kind really does where it legitimately
differs, so a real exporter is compared with its own kind.  On another
kernel release the stand-in is that profile plus the upstream changes of its
release range (kernel_ranges.py; ``STAND_INS``, chosen by stand_in.py).  Each
``faulty-<bug>`` profile is the reference with exactly one rule broken.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from conformance.errors import UnknownExporter
from conformance.model.kernel_ranges import KINDS, Segment, profiles_for

# The case families a faulty exporter must be caught by (brief's names).
FAMILIES = (
    "alloc",
    "mmap",
    "sync",
    "attach-order-cmo",
    "kmap-contract",
    "negative-kmap-cnt",
    "vmap-aliasing",
    "streaming-dma",
    "dma-constraints",
    "zero-fill",
    "leak",
    "uapi",
    "exporter-specific",
    # issue 11 (cases/test_size_ladder.py, cases/test_two_importers.py)
    "size-ladder",
    "two-importers",
)


@dataclass(frozen=True)
class ExporterProfile:
    name: str  # without the "model:" prefix
    kind: str  # the exporter kind it behaves like: heap | udmabuf | vgem | ion | protected-heap
    description: str
    source: str = ""  # seed / note / kernel file it comes from
    family: str = ""  # for faulty profiles: the case family that must catch it
    exp_name: str = "system"
    # allocation
    zero_on_alloc: bool = True
    uncached_user_mapping: bool = False  # user mmap is write-combined
    clean_after_zero: bool = True  # zeroes pushed out of the cache before uncached use
    free_pages_on_release: bool = True
    # device mapping: "per-map" (exporter maps/unmaps every time), "at-first-map"
    # (dma-buf core caches the sgt: ops->cache_sgt_mapping), "at-attach" (seed 004 patch)
    sgt_cache: str = "per-map"
    map_skip_cpu_sync: bool = False  # DMA_ATTR_SKIP_CPU_SYNC on map and unmap
    first_map_cmo: bool = True  # False: the buffer's first device map does no CMO
    honour_constraints: bool = True  # sg segments split for max_segment / boundary
    # CPU access brackets: "attachments" (sync every mapped attachment, system heap),
    # "misc-device" (udmabuf: map for its own misc device), "none" (no callbacks: vgem)
    cpu_access: str = "attachments"
    end_requires_begin: bool = False  # END with nothing begun -> EINVAL (udmabuf)
    # with cpu_access="attachments": which mapped attachments begin/end sync: "all",
    # "first" (only the first on the list), "none" (mapped attachments are skipped)
    cpu_access_syncs: str = "all"
    # kernel mappings
    has_vmap: bool = True
    vmap_refcount: bool = True  # False: calls reach the exporter uncounted (no vmapping_counter)
    vunmap_unmaps: bool = True  # False: the exporter's vunmap leaves the kernel mapping behind
    vmap_cmo: bool = True  # flush/invalidate_kernel_vmap_range in end/begin_cpu_access
    has_kmap: bool = True
    kmap_in_begin: bool = False  # ION: begin_cpu_access creates the kernel mapping
    kmap_count_balanced: bool = True  # END without BEGIN leaves kmap_count alone
    begin_map_error_swallowed: bool = False  # begin hides a failed kernel mapping
    # user mappings
    has_mmap: bool = True  # False: no dma_buf_ops.mmap, dma_buf_mmap refuses (EINVAL)
    accept_private: bool = False
    check_mmap_bounds: bool = True
    mremap_grow: str = "efault"  # "efault" (VM_PFNMAP|VM_DONTEXPAND) or "fault-handler"
    fault_checks_bounds: bool = True  # fault handler: pgoff >= pagecount -> SIGBUS
    # the dma-buf file (core code, but a vendor kernel carries its own copy of it)
    name_len_checked: bool = True  # SET_NAME: strndup_user(buf, DMA_BUF_NAME_LEN)
    put_on_fd_failure: bool = True  # a failed fd install drops the new buffer (dma_buf_put)
    sync_file_ioctls: bool = True  # DMA_BUF_IOCTL_EXPORT/IMPORT_SYNC_FILE (6.0+)
    # fork: the user mapping is inherited by a child (no VM_DONTCOPY)
    mapping_inherited: bool = True
    # udmabuf_create (drivers/dma-buf/udmabuf.c)
    udmabuf_seal_check: bool = True  # F_SEAL_SHRINK wanted, F_SEAL_WRITE denied
    udmabuf_align_check: bool = True  # offset and size page-aligned
    udmabuf_rejects_empty: bool = True  # pagecount 0 -> EINVAL
    udmabuf_memfd_bounds: bool = True  # pages past the memfd's end -> EINVAL
    udmabuf_list_limit: bool = True  # count > list_limit -> EINVAL before memdup_user
    udmabuf_item_offset: bool = True  # each item's offset honoured
    udmabuf_pins_pages: bool = True  # the buffer is the memfd's pages, not a copy of them
    # DRM PRIME (drivers/gpu/drm/drm_prime.c)
    prime_reimport_same: bool = True  # own dma-buf imports back to the same GEM object
    gem_close_keeps_pages: bool = True  # the dma-buf's reference keeps the pages
    # -- issue 11: release paths, page leaks, udmabuf's module limits
    # release unmaps the table begin_cpu_access mapped (udmabuf's misc device) with
    # "mapped": its map direction; "bidirectional": DMA_BIDIRECTIONAL whatever it was
    release_unmap_dir: str = "mapped"
    release_keeps_pages: int = 0  # pages of each buffer release never gives back
    release_on_last_fd: bool = False  # pages freed at the last fd, importers' references or not
    udmabuf_list_limit_param: bool = True  # False: the compiled-in 1024, not list_limit
    udmabuf_size_limit_total: bool = True  # False: size_limit_mb checked per item, not in total
    # -- issue 11: code paths taken per chunk order (conformance/model/chunks.py: the
    # system heap's 8/4/0 layout), each switch off by default; cases/test_size_ladder.py
    unzeroed_min_order: int = -1  # chunks of this order and above are not zeroed (-1: all are)
    mmap_pgoff_in_entries: bool = False  # mmap skips vm_pgoff sg entries, not pages
    cpu_sync_first_entry_only: bool = False  # begin/end_cpu_access sync the first sg entry only
    vmap_chunk_head_pages: bool = False  # vmap's page array repeats each chunk's first page
    sg_drops_order0_tail: bool = False  # the sg table ends at the last high-order chunk
    mmap_ref_leak_min_order: int = -1  # mmap of a buffer with a chunk this big leaks a reference
    # -- issue 11: two importers mapped at once (cases/test_two_importers.py)
    shared_sgt: bool = False  # one sg table for every attachment (ION before 2019, seed 002)

    # -- issue 11 (bad input at volume): the dma-buf file's ioctl dispatch
    ioctl_size_checked: bool = True  # False: dma_buf_ioctl matches _IOC_NR only, not the size

    @property
    def exporter_name(self) -> str:
        return f"model:{self.name}"

    @property
    def marker(self) -> str:
        """The pytest marker of ``family`` (fixtures/plugin.py spells families with '_')."""
        return self.family.replace("-", "_")


REFERENCE = ExporterProfile(
    "reference",
    "heap",
    "keeps every rule: zeroed pages, CMO at every map/unmap/sync, vmap alias maintenance, "
    "refcounted vmap, balanced counters, sg lists within the device's limits",
    "drivers/dma-buf/heaps/system_heap.c (6.1) plus the seeds' rules",
)

KIND_PROFILES: dict[str, ExporterProfile] = {
    "heap": REFERENCE,
    "udmabuf": replace(
        REFERENCE,
        name="reference-udmabuf",
        kind="udmabuf",
        exp_name="udmabuf",
        description="6.1 udmabuf: sgt cached by the core at first map, mapped with "
        "SKIP_CPU_SYNC; SYNC maps the buffer for the udmabuf misc device and syncs "
        "it there; END before any START is EINVAL; no vmap/kmap; fault-handler mmap",
        source="drivers/dma-buf/udmabuf.c (6.1)",
        sgt_cache="at-first-map",
        map_skip_cpu_sync=True,
        cpu_access="misc-device",
        end_requires_begin=True,
        has_vmap=False,
        has_kmap=False,
        mremap_grow="fault-handler",
    ),
    "vgem": replace(
        REFERENCE,
        name="reference-vgem",
        kind="vgem",
        exp_name="drm",
        description="6.1 vgem PRIME (drm_gem_shmem): sgt cached by the core, mapped with "
        "SKIP_CPU_SYNC; no begin/end_cpu_access callbacks (SYNC does nothing); vmap; no kmap",
        source="drivers/gpu/drm/drm_prime.c, drm_gem_shmem_helper.c (6.1)",
        sgt_cache="at-first-map",
        map_skip_cpu_sync=True,
        cpu_access="none",
        has_kmap=False,
    ),
    "ion": replace(
        REFERENCE,
        name="reference-ion",
        kind="ion",
        exp_name="ion",
        description="ION (4.x) done right: begin_cpu_access creates the kernel mapping "
        "(kmap_count), END without BEGIN leaves it alone, kmap after BEGIN always works",
        source="seed 001; drivers/staging/android/ion/ion.c (4.14)",
        kmap_in_begin=True,
    ),
    "protected-heap": replace(
        REFERENCE,
        name="reference-protected-heap",
        kind="protected-heap",
        description="a protected (secure) heap: memory the CPU must not touch, so no mmap "
        "(EINVAL), no vmap, no begin/end_cpu_access; devices attach and map it as usual",
        source="drivers/tee/tee_heap.c (6.18: dma_buf_ops attach/detach/map/unmap/release "
        "only); vendor secure heaps",
        has_mmap=False,
        has_vmap=False,
        has_kmap=False,
        cpu_access="none",
    ),
    "uncached": replace(
        REFERENCE,
        name="reference-uncached",
        kind="heap",
        description="an uncached (write-combined) heap done right: zeroes cleaned out of "
        "the CPU cache before the buffer is handed out",
        source="seed 000 (ION uncached buffers)",
        uncached_user_mapping=True,
    ),
}


def _faulty(bug: str, family: str, source: str, description: str, **changes) -> ExporterProfile:
    assert family in FAMILIES, family
    base = KIND_PROFILES["ion"] if changes.pop("ion", False) else REFERENCE
    base = KIND_PROFILES[changes.pop("kind", base.kind)] if "kind" in changes else base
    return replace(
        base,
        name=f"faulty-{bug}",
        kind=base.kind,
        description=description,
        source=source,
        family=family,
        **changes,
    )


FAULTY: tuple[ExporterProfile, ...] = (
    _faulty(
        "no-zeroing",
        "zero-fill",
        "uapi-facts.md 'non-zeroed pages'; seed 000",
        "hands out recycled pages without zeroing them",
        zero_on_alloc=False,
    ),
    _faulty(
        "sgt-cache-no-cmo",
        "attach-order-cmo",
        "seed 004",
        "maps the sg table BIDIRECTIONAL at attach and caches it: map/unmap do no CMO",
        sgt_cache="at-attach",
    ),
    _faulty(
        "first-map-no-clean",
        "attach-order-cmo",
        "seeds 000, 002",
        "assumes heap memory is 'ready for DMA': the first device map does no cache clean",
        first_map_cmo=False,
    ),
    _faulty(
        "uncached-alias",
        "zero-fill",
        "seed 000",
        "write-combined user mapping over pages zeroed through the cached linear map "
        "and never cleaned: user space reads the old memory under the dirty lines",
        uncached_user_mapping=True,
        clean_after_zero=False,
    ),
    _faulty(
        "negative-kmap-cnt",
        "negative-kmap-cnt",
        "seed 001",
        "ION end_cpu_access drops kmap_cnt without a matching begin: the kernel mapping a "
        "held vmap uses is unmapped under it, then the count goes negative",
        ion=True,
        kmap_count_balanced=False,
    ),
    _faulty(
        "kmap-fails-after-begin",
        "kmap-contract",
        "seed 001",
        "begin_cpu_access swallows a failed kernel mapping, so kmap after it fails",
        ion=True,
        begin_map_error_swallowed=True,
    ),
    _faulty(
        "vmap-no-flush",
        "vmap-aliasing",
        "seed 003",
        "no flush/invalidate_kernel_vmap_range: on an aliasing cache the vmap alias and "
        "the device disagree",
        vmap_cmo=False,
    ),
    _faulty(
        "vmap-no-refcount",
        "kmap-contract",
        "seed 001 (ION vmap patch), seed 003 (heap helpers); dma-buf.c vmapping_counter",
        "vmap calls reach the exporter uncounted (a dma-buf core without vmapping_counter, "
        "e.g. a vendor copy of dma-buf.c): each vmap maps anew and the first vunmap tears "
        "down every user's mapping.  On 5.10+ upstream the core counts, which hides an "
        "exporter's own refcount bug",
        vmap_refcount=False,
    ),
    _faulty(
        "vmap-leak",
        "kmap-contract",
        "seed 003 (heap helpers' vmap_cnt; 'buffer still mapped in the kernel')",
        "the exporter's vunmap never unmaps (a vmap_cnt that never reaches 0, a missing "
        "vunmap()): every vmap/vunmap pair leaks a kernel mapping and its vmalloc space",
        vunmap_unmaps=False,
    ),
    _faulty(
        "cpu-access-skips-mapped",
        "streaming-dma",
        "seeds 000, 001 (begin/end_cpu_access sync every attached device); issue 11",
        "begin/end_cpu_access do not sync mapped attachments: while a device stays mapped, "
        "the CPU reads stale data after SYNC_START and the device after SYNC_END",
        cpu_access_syncs="none",
    ),
    _faulty(
        "cpu-access-first-attachment-only",
        "streaming-dma",
        "seed 000 ('sync for device access for all currently attached devices')",
        "begin/end_cpu_access sync only the first mapped attachment on the buffer's list: "
        "every other device mapped at the same time reads stale data",
        cpu_access_syncs="first",
    ),
    _faulty(
        "sg-too-long",
        "dma-constraints",
        "uapi-facts.md; system_heap.c allocates up to 1 MiB chunks",
        "sg segments ignore the device's max segment size and boundary",
        honour_constraints=False,
    ),
    _faulty(
        "mmap-private",
        "mmap",
        "uapi-facts.md ('exporters require MAP_SHARED')",
        "accepts MAP_PRIVATE: writes land in private copies the device never sees",
        accept_private=True,
    ),
    _faulty(
        "mmap-past-end",
        "mmap",
        "uapi-facts.md ('pgoff + pages > size -> EINVAL'; CMA fault off by one)",
        "no bounds check on mmap: pages past the end map the neighbouring memory",
        check_mmap_bounds=False,
    ),
    _faulty(
        "leak-pages",
        "leak",
        "uapi-facts.md ('double free or leak')",
        "release frees the dma-buf but never returns its pages: memory runs out",
        free_pages_on_release=False,
    ),
    _faulty(
        "mremap-grow",
        "mmap",
        "uapi-facts.md ('mapping grown past the buffer with mremap')",
        "mapping grows under mremap and the fault handler checks pgoff > pagecount (the old "
        "CMA heap off-by-one): the page past the buffer is mapped",
        mremap_grow="fault-handler",
        fault_checks_bounds=False,
    ),
    _faulty(
        "leak-on-fd-failure",
        "leak",
        "uapi-facts.md ('double free or leak when installing the fd fails')",
        "when no fd is left (EMFILE) the new buffer is never released: every failed "
        "allocation leaks a buffer and its pages",
        put_on_fd_failure=False,
    ),
    _faulty(
        "set-name-unbounded",
        "uapi",
        "dma-buf.c dma_buf_set_name (strndup_user with DMA_BUF_NAME_LEN)",
        "DMA_BUF_SET_NAME copies a name of any length: user space sets kernel memory "
        "use without bound and fdinfo/bufinfo print it whole",
        name_len_checked=False,
    ),
    _faulty(
        "mmap-dontcopy",
        "mmap",
        "IGT dma-buf tests (fork sharing); mm: VM_DONTCOPY",
        "user mappings are not inherited across fork (VM_DONTCOPY): a child that shares "
        "the buffer through its inherited mapping dies with SIGSEGV",
        mapping_inherited=False,
    ),
    _faulty(
        "udmabuf-no-seal-check",
        "exporter-specific",
        "udmabuf.c SEALS_WANTED/SEALS_DENIED; kselftest udmabuf",
        "udmabuf accepts memfds without F_SEAL_SHRINK or with F_SEAL_WRITE: the file can "
        "shrink under the buffer's pinned pages, or the 'sealed' data changes behind it",
        kind="udmabuf",
        udmabuf_seal_check=False,
    ),
    _faulty(
        "udmabuf-no-align-check",
        "exporter-specific",
        "udmabuf.c IS_ALIGNED(offset/size, PAGE_SIZE); kselftest udmabuf",
        "udmabuf rounds a misaligned offset down and size up instead of refusing them: "
        "the buffer exposes memfd bytes the caller did not ask for",
        kind="udmabuf",
        udmabuf_align_check=False,
    ),
    _faulty(
        "udmabuf-empty",
        "exporter-specific",
        "udmabuf.c 'if (!ubuf->pagecount) goto err'",
        "udmabuf makes a zero-page dma-buf from size 0 or an empty list",
        kind="udmabuf",
        udmabuf_rejects_empty=False,
    ),
    _faulty(
        "udmabuf-past-memfd-end",
        "exporter-specific",
        "udmabuf.c shmem_read_mapping_page; kselftest udmabuf ('size > memfd')",
        "udmabuf takes pages past the memfd's end (fresh pages outside the file) instead "
        "of refusing the range",
        kind="udmabuf",
        udmabuf_memfd_bounds=False,
    ),
    _faulty(
        "udmabuf-no-list-limit",
        "exporter-specific",
        "udmabuf.c udmabuf_ioctl_create_list (head.count > list_limit)",
        "CREATE_LIST trusts the count: memdup_user copies count items from user memory "
        "that holds fewer (EFAULT, or garbage items) instead of refusing it",
        kind="udmabuf",
        udmabuf_list_limit=False,
    ),
    _faulty(
        "udmabuf-item-offset-ignored",
        "exporter-specific",
        "udmabuf.c pgoff = list[i].offset >> PAGE_SHIFT",
        "CREATE_LIST takes every item from the start of its memfd: the buffer holds the "
        "wrong pages",
        kind="udmabuf",
        udmabuf_item_offset=False,
    ),
    _faulty(
        "udmabuf-copies-pages",
        "exporter-specific",
        "udmabuf.c (ubuf->pages are the memfd's page-cache pages); kselftest udmabuf",
        "udmabuf snapshots the memfd into pages of its own at create: later writes to the "
        "memfd never show through the dma-buf",
        kind="udmabuf",
        udmabuf_pins_pages=False,
    ),
    _faulty(
        "udmabuf-grow-past-end",
        "mmap",
        "udmabuf.c udmabuf_vm_fault (pgoff >= ubuf->pagecount -> VM_FAULT_SIGBUS)",
        "a udmabuf mapping grown by mremap faults in whatever page lies past the buffer's "
        "page array instead of SIGBUS",
        kind="udmabuf",
        mremap_grow="fault-handler",
        fault_checks_bounds=False,
    ),
    _faulty(
        "protected-heap-mappable",
        "exporter-specific",
        "drivers/tee/tee_heap.c (no mmap op: dma_buf_mmap_internal returns -EINVAL)",
        "a protected heap implements mmap: user space maps memory the secure world owns",
        kind="protected-heap",
        has_mmap=True,
    ),
    _faulty(
        "protected-heap-vmappable",
        "exporter-specific",
        "drivers/tee/tee_heap.c (no vmap op: dma_buf_vmap returns -EINVAL)",
        "a protected heap implements vmap: the kernel's CPU maps protected memory",
        kind="protected-heap",
        has_vmap=True,
    ),
    _faulty(
        "vgem-prime-copy",
        "exporter-specific",
        "drm_prime.c drm_gem_prime_fd_to_handle (own dma-buf -> same object)",
        "PRIME import makes a new GEM object with a copy of the pages (of its own or a "
        "foreign dma-buf): the re-exported dma-buf is another buffer and writes no longer meet",
        kind="vgem",
        prime_reimport_same=False,
    ),
    _faulty(
        "vgem-gem-close-frees",
        "exporter-specific",
        "drm_gem.c / drm_prime.c (the dma-buf holds a GEM object reference)",
        "closing the last GEM handle frees the object's pages although a dma-buf fd still "
        "refers to them (use after free)",
        kind="vgem",
        gem_close_keeps_pages=False,
    ),
    # -- issue 11: bugs in one chunk order's code path, so they show at some sizes only
    # (cases/test_size_ladder.py runs every contract over the ladder 1, 2, 7, 16, 256, 273,
    # 515 pages; conformance/model/chunks.py has the system heap's chunk layout)
    _faulty(
        "no-zero-high-order",
        "size-ladder",
        "system_heap.c (6.1) order_flags[]: HIGH_ORDER_GFP and MID_ORDER_GFP are spelt "
        "apart from LOW_ORDER_GFP, each must carry __GFP_ZERO; uapi-facts.md 'non-zeroed pages'",
        "the order-4 and order-8 allocations lost __GFP_ZERO: buffers of 16 pages and more "
        "hand user space recycled pages with their old contents; smaller ones are zeroed",
        unzeroed_min_order=4,
    ),
    _faulty(
        "mmap-pgoff-in-entries",
        "size-ladder",
        "system_heap.c (6.1) system_heap_mmap: for_each_sgtable_page(table, &piter, "
        "vma->vm_pgoff) counts the offset in pages",
        "mmap skips vm_pgoff sg entries instead of pages: right while every entry is one page "
        "(up to 15 pages), a mapping at a page offset of a buffer with 64 KiB or 1 MiB chunks "
        "maps the wrong pages or none (SIGBUS)",
        mmap_pgoff_in_entries=True,
    ),
    _faulty(
        "sync-first-entry-only",
        "size-ladder",
        "seeds 000, 002 (CMO over the whole buffer); system_heap.c (6.1) "
        "system_heap_dma_buf_begin_cpu_access: dma_sync_sgtable_for_cpu over the whole table",
        "begin/end_cpu_access sync a mapped attachment's first sg entry only (a "
        "dma_sync_single_for_* of sg_dma_address(sgl), sg_dma_len(sgl), as for a contiguous "
        "buffer): right for a one-chunk buffer (1, 16, 256 pages), stale data past the first "
        "chunk otherwise",
        cpu_sync_first_entry_only=True,
    ),
    _faulty(
        "vmap-chunk-head-pages",
        "size-ladder",
        "system_heap.c (6.1) system_heap_do_vmap: the page array from for_each_sgtable_page",
        "vmap's page array takes sg_page(sg) for every page of an entry (the nth_page() step "
        "forgotten): right for order-0 chunks, every page of a 64 KiB or 1 MiB chunk shows "
        "the chunk's first page through the kernel mapping",
        vmap_chunk_head_pages=True,
    ),
    _faulty(
        "sg-drops-order0-tail",
        "size-ladder",
        "system_heap.c (6.1) system_heap_allocate: sg_alloc_table(table, i) with i counting "
        "every chunk; dma-buf.h map_dma_buf ('the backing storage of the DMA buffer')",
        "the sg table ends at the last high-order chunk: a buffer that has order-0 chunks "
        "after a 64 KiB or 1 MiB one (273, 515 pages) gives devices a list that stops short "
        "of its end",
        sg_drops_order0_tail=True,
    ),
    _faulty(
        "mmap-ref-leak-high-order",
        "size-ladder",
        "uapi-facts.md ('double free or leak'); dma-buf.c dma_buf_mmap_internal (the "
        "mapping holds the file, munmap drops it)",
        "the mmap path of a buffer holding a 1 MiB chunk takes a reference on the buffer it "
        "never drops (a get_dma_buf in the large-mapping branch): such buffers outlive their "
        "last fd and mapping; smaller ones are freed",
        mmap_ref_leak_min_order=8,
    ),
    # -- issue 11: two importers mapped at the same time
    _faulty(
        "shared-sg-table",
        "two-importers",
        "seed 002 ('Ion currently does nothing except pass back the same sg_table each "
        "time'); dma-buf.h map_dma_buf (a table mapped for *this* attachment's device); "
        "system_heap.c (6.1) system_heap_attach: dup_sg_table per attachment",
        "every attachment gets the buffer's one sg table: mapping a second device re-maps "
        "the first one's table for it, and unmapping either unmaps both",
        shared_sgt=True,
    ),
)

# -- issue 11: release paths (REL), page leaks (LEAK-003), udmabuf's module limits ----------
FAULTY = FAULTY + (
    _faulty(
        "udmabuf-release-direction",
        "leak",
        "udmabuf.c release_udmabuf (5.10.223 udmabuf.c:108, put_sg_table(dev, ubuf->sg, "
        "DMA_BIDIRECTIONAL)); the upstream fix 'DMA direction mismatch in release_udmabuf()' "
        "(2026; 6.1.192 udmabuf.c:117 unmaps with ubuf->sg_dir)",
        "release unmaps the table begin_cpu_access mapped for udmabuf's misc device with "
        "DMA_BIDIRECTIONAL, not the CPU direction it was mapped with: DMA-API debug reports "
        "'frees DMA memory with different direction' whenever a READ- or WRITE-only SYNC "
        "preceded the close",
        kind="udmabuf",
        release_unmap_dir="bidirectional",
    ),
    _faulty(
        "release-on-last-fd",
        "leak",
        "dma-buf.c (6.1): the file, and so the buffer, lives while any reference does "
        "(dma_buf_get/get_dma_buf by importers); a reference imbalance (an extra put in the "
        "exporter) or a free from the exporter's own handle close breaks it",
        "frees the buffer's pages when its last fd closes although an importer still holds "
        "it (a mapped attachment, a vmap, a user mapping): the device and the kernel mapping "
        "go on using pages the allocator hands out again (use after free)",
        release_on_last_fd=True,
    ),
    _faulty(
        "leak-chunk-on-release",
        "leak",
        "issue 11 ('an exporter that keeps one chunk per freed buffer must be caught')",
        "release returns every page of the buffer but one (an off-by-one in the free loop, "
        "or a pool that keeps a chunk per buffer and never gives it back): the dma-buf "
        "object goes, a page per buffer stays used; LEAK-002 never runs out, the page "
        "account (/proc/meminfo) shows it",
        release_keeps_pages=1,
    ),
    _faulty(
        "udmabuf-list-limit-param-ignored",
        "exporter-specific",
        "6.1 udmabuf.c:16-18 (list_limit, a 0644 module parameter) and :341 "
        "(head.count > list_limit); 5.10.223 udmabuf.c:15 had a constant",
        "CREATE_LIST enforces the compiled-in 1024 items whatever root sets list_limit to "
        "(a backport that kept the constant beside the parameter): a lowered limit is "
        "not enforced",
        kind="udmabuf",
        udmabuf_list_limit_param=False,
    ),
    _faulty(
        "udmabuf-size-limit-per-item",
        "exporter-specific",
        "6.1 udmabuf.c:194-202 (pagecount summed over the items, checked against "
        "size_limit_mb after each)",
        "udmabuf checks each item against size_limit_mb instead of the buffer's total: a "
        "list of items each under the limit makes a buffer over it",
        kind="udmabuf",
        udmabuf_size_limit_total=False,
    ),
    # -- issue 11 (bad input at volume: cases/test_bad_input.py, BADIN-001)
    _faulty(
        "ioctl-nr-only",
        "uapi",
        "dma-buf.c dma_buf_ioctl (6.1 compares the whole request number, else -ENOTTY); "
        "dma-heap.c dma_heap_ioctl dispatches on _IOC_NR alone",
        "the dma-buf file dispatches its ioctls on _IOC_NR alone, as dma_heap_ioctl does: a "
        "request with another struct size or direction runs as SYNC, SET_NAME or a sync-file "
        "ioctl on bytes the caller did not mean (a zeroed SET_NAME argument names the buffer '')",
        ioctl_size_checked=False,
    ),
)

# Per kernel release range, each kind's stand-in (kernel_ranges.py: the data and its sources).
# STAND_INS[kind] lists (segment, profile), oldest range first; the 6.1 range is KIND_PROFILES'.
STAND_INS: dict[str, list[tuple[Segment, ExporterProfile]]] = {
    kind: profiles_for(kind, KIND_PROFILES[kind]) for kind in KINDS
}

PROFILES: dict[str, ExporterProfile] = {
    p.exporter_name: p
    for p in (
        REFERENCE,
        *KIND_PROFILES.values(),
        *(p for ranges in STAND_INS.values() for _, p in ranges),
        *FAULTY,
    )
}


def profile(exporter: str) -> ExporterProfile:
    try:
        return PROFILES[exporter]
    except KeyError:
        raise UnknownExporter(
            f"the model has no exporter {exporter!r}; it offers: {', '.join(sorted(PROFILES))}"
        ) from None


def reference_exporter_for(kind: str) -> str:
    """The model exporter a real exporter of ``kind`` (heap|udmabuf|vgem|ion) is compared with."""
    try:
        return KIND_PROFILES[kind].exporter_name
    except KeyError:
        raise UnknownExporter(
            f"no model profile for exporter kind {kind!r} (known: heap, udmabuf, vgem, ion, "
            "protected-heap)"
        ) from None


def catalogue() -> list[dict[str, str]]:
    """Every faulty exporter: name, description, source and the family that must catch it."""
    return [
        {
            "name": p.exporter_name,
            "description": p.description,
            "source": p.source,
            "family": p.family,
        }
        for p in FAULTY
    ]


# -- issue 11 §3: exporters with several faults at once, for GEN-001's classes -------------
# Outside the catalogue (tests/test_faulty_matrix.py wants one family per profile): each
# fault is a catalogue profile's switch, and GEN-001 must report each as a class of its
# own (tests/test_generated.py).  Selectable like any model exporter.
MULTI_FAULT: tuple[ExporterProfile, ...] = (
    replace(
        REFERENCE,
        name="faulty-two-faults",
        description="two unrelated faults at once: begin/end_cpu_access skip mapped "
        "attachments (as faulty-cpu-access-skips-mapped) and mmap has no bounds check "
        "(as faulty-mmap-past-end)",
        source="seeds 000, 001; uapi-facts.md ('pgoff + pages > size -> EINVAL'); issue 11 §3",
        family="generated",
        cpu_access_syncs="none",
        check_mmap_bounds=False,
    ),
)
PROFILES.update({p.exporter_name: p for p in MULTI_FAULT})
