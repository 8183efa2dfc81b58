/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dmabuf_probe: uapi of the conformance suite's in-kernel dma-buf importer.
 *
 * This header is the single source of the probe's ABI: the Python bindings
 * (conformance/probe/uapi.py) mirror it field by field and
 * tests/test_probe_uapi.py compiles it to check that they agree.
 *
 * Objects (attachments, vmaps, kmaps) belong to the open file that made
 * them and are released when it is closed, so a crashed test run leaves
 * nothing attached.  Every struct has only fixed-size fields, naturally
 * aligned, so 32- and 64-bit user space see the same layout.
 *
 * Every value user space passes is checked before it reaches the kernel's
 * APIs: a direction outside 0..2 (3 is DMA_NONE, which the DMA API BUG_ONs
 * on), a non-zero pad, an unknown flag, a device index past the end, an
 * unknown object id, an offset/length outside the buffer: all EINVAL.
 */
#ifndef _UAPI_DMABUF_PROBE_H
#define _UAPI_DMABUF_PROBE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DMABUF_PROBE_ABI_VERSION 2
#define DMABUF_PROBE_NAME_LEN 32

/* DMABUF_PROBE_IOC_INFO: what this build of the module can do. */
#define DMABUF_PROBE_HAVE_KMAP (1U << 0)	/* dma_buf_kmap exists (< 5.6) */
#define DMABUF_PROBE_HAVE_KPROBES (1U << 1)	/* DMA event log is live */
#define DMABUF_PROBE_HAVE_EXPORTER_LOG (1U << 2)	/* exporter-op log is live, no hook failed */

struct dmabuf_probe_info {
	__u32 abi_version;	/* out: DMABUF_PROBE_ABI_VERSION */
	__u32 flags;		/* out: DMABUF_PROBE_HAVE_* */
	__u32 num_devices;	/* out */
	__u32 kernel_version;	/* out: LINUX_VERSION_CODE built against */
};

/* Device flags. */
#define DMABUF_PROBE_DEV_COHERENT (1U << 0)	/* snoops CPU caches: sees the pages */
#define DMABUF_PROBE_DEV_BOUNCE (1U << 1)	/* DMA goes through swiotlb bounce buffers */

struct dmabuf_probe_device_info {
	__u32 index;		/* in: 0 .. num_devices-1; EINVAL past the end */
	__u32 flags;		/* out: DMABUF_PROBE_DEV_* */
	__u64 max_segment;	/* out: dma_get_max_seg_size(); 0 = no limit */
	__u64 segment_boundary;	/* out: boundary mask + 1; 0 = none */
	__u64 max_mapping;	/* out: dma_max_mapping_size(): the largest segment that can
				 * map at all (swiotlb: 256 KiB); 0 = no limit */
	char name[DMABUF_PROBE_NAME_LEN];	/* out: NUL-terminated */
};

struct dmabuf_probe_attach {
	char device[DMABUF_PROBE_NAME_LEN];	/* in: probe device name */
	__s32 fd;		/* in: dma-buf fd */
	__u32 id;		/* out: attachment id */
};

/* Detach, vunmap, kunmap: the object's id. */
struct dmabuf_probe_handle {
	__u32 id;
	__u32 pad;		/* must be 0 */
};

struct dmabuf_probe_map {
	__u32 id;		/* in: attachment id */
	__u32 direction;	/* in: enum dma_data_direction */
	__u32 nents;		/* out (MAP): DMA segments in the mapped sg list */
	__u32 pad;		/* must be 0 */
};

struct dmabuf_probe_segment {
	__u64 dma_address;
	__u64 length;
};

/* Query the sg list of a mapped attachment. */
struct dmabuf_probe_sg {
	__u32 id;		/* in: attachment id */
	__u32 count;		/* in: capacity of segments[]; out: DMA segments */
	__u64 segments;		/* in: user pointer to struct dmabuf_probe_segment[] */
};

/* Device and vmap reads/writes: [offset, offset+length) of the buffer. */
struct dmabuf_probe_rw {
	__u32 id;		/* in: attachment or vmap id */
	__u32 pad;		/* must be 0 */
	__u64 offset;
	__u64 length;		/* at most DMABUF_PROBE_MAX_RW */
	__u64 data;		/* user pointer */
};
#define DMABUF_PROBE_MAX_RW (64U << 20)

struct dmabuf_probe_cpu_access {
	__s32 fd;		/* in: dma-buf fd */
	__u32 direction;	/* in: enum dma_data_direction */
};

struct dmabuf_probe_vmap {
	__s32 fd;		/* in: dma-buf fd */
	__u32 id;		/* out: vmap id */
	__u64 size;		/* out: bytes addressable through the vmap */
};

struct dmabuf_probe_kmap {
	__s32 fd;		/* in: dma-buf fd */
	__u32 page;		/* in: page number */
	__u32 id;		/* out: kmap id */
	__u32 pad;		/* must be 0 */
};

/*
 * Counters of one dma-buf.  Exporters keep their own counts (kmap_cnt,
 * vmap_cnt) in private structs the probe cannot read; what an exporter does
 * with them shows in the exporter-op log below instead.
 */
struct dmabuf_probe_counters {
	__s32 fd;		/* in: dma-buf fd */
	__u32 pad;		/* must be 0 */
	__s64 attachments;	/* every attachment on the buffer, any importer */
	__s64 maps;		/* this file's attachments that are mapped now */
	__s64 vmap_count;	/* dma_buf->vmapping_counter (the dma-buf core's) */
};

/* DMA event ops. */
#define DMABUF_PROBE_OP_MAP_SG 1
#define DMABUF_PROBE_OP_UNMAP_SG 2
#define DMABUF_PROBE_OP_SYNC_SG_FOR_CPU 3
#define DMABUF_PROBE_OP_SYNC_SG_FOR_DEVICE 4
#define DMABUF_PROBE_OP_MAP_PAGE 5
#define DMABUF_PROBE_OP_UNMAP_PAGE 6
#define DMABUF_PROBE_OP_SYNC_SINGLE_FOR_CPU 7
#define DMABUF_PROBE_OP_SYNC_SINGLE_FOR_DEVICE 8
/*
 * The exporter's own dma_buf_ops, called by the dma-buf core (kprobes at
 * dmabuf->ops->vmap etc., placed the first time an ioctl names a buffer of
 * that exporter).  Logged for any buffer of a watched exporter; device is
 * DMABUF_PROBE_EXPORTER_LOG, length the buffer's size, direction the CPU
 * access direction (DMA_NONE for vmap/vunmap).
 */
#define DMABUF_PROBE_OP_EXPORTER_VMAP 9
#define DMABUF_PROBE_OP_EXPORTER_VUNMAP 10
#define DMABUF_PROBE_OP_EXPORTER_BEGIN_CPU_ACCESS 11
#define DMABUF_PROBE_OP_EXPORTER_END_CPU_ACCESS 12

#define DMABUF_PROBE_EVENT_SKIP_CPU_SYNC (1U << 0)	/* attrs had DMA_ATTR_SKIP_CPU_SYNC */

struct dmabuf_probe_event {
	__u64 seq;		/* global order across devices */
	__u64 length;		/* bytes covered */
	__u32 device;		/* device index */
	__u32 op;		/* DMABUF_PROBE_OP_* */
	__u32 direction;	/* enum dma_data_direction */
	__u32 flags;		/* DMABUF_PROBE_EVENT_* */
};

#define DMABUF_PROBE_ALL_DEVICES 0xffffffffU	/* every probe device, not the exporter log */
#define DMABUF_PROBE_EXPORTER_LOG 0xfffffffeU	/* the exporter-op log (EOPNOTSUPP if incomplete) */
#define DMABUF_PROBE_EVENTS_CLEAR (1U << 0)	/* drop the returned events from the log */

struct dmabuf_probe_events {
	__u32 device;		/* in: device index, DMABUF_PROBE_ALL_DEVICES or _EXPORTER_LOG */
	__u32 flags;		/* in: DMABUF_PROBE_EVENTS_* */
	__u32 count;		/* in: capacity of events[]; out: events written */
	__u32 dropped;		/* out: events lost to a full log since the last clear */
	__u64 events;		/* in: user pointer to struct dmabuf_probe_event[] */
};

#define DMABUF_PROBE_IOC_MAGIC 0xDB

#define DMABUF_PROBE_IOC_INFO		_IOR(DMABUF_PROBE_IOC_MAGIC, 0, struct dmabuf_probe_info)
#define DMABUF_PROBE_IOC_DEVICE_INFO	_IOWR(DMABUF_PROBE_IOC_MAGIC, 1, struct dmabuf_probe_device_info)
#define DMABUF_PROBE_IOC_ATTACH		_IOWR(DMABUF_PROBE_IOC_MAGIC, 2, struct dmabuf_probe_attach)
#define DMABUF_PROBE_IOC_DETACH		_IOW(DMABUF_PROBE_IOC_MAGIC, 3, struct dmabuf_probe_handle)
#define DMABUF_PROBE_IOC_MAP		_IOWR(DMABUF_PROBE_IOC_MAGIC, 4, struct dmabuf_probe_map)
#define DMABUF_PROBE_IOC_UNMAP		_IOW(DMABUF_PROBE_IOC_MAGIC, 5, struct dmabuf_probe_map)
#define DMABUF_PROBE_IOC_SG		_IOWR(DMABUF_PROBE_IOC_MAGIC, 6, struct dmabuf_probe_sg)
#define DMABUF_PROBE_IOC_DEVICE_READ	_IOW(DMABUF_PROBE_IOC_MAGIC, 7, struct dmabuf_probe_rw)
#define DMABUF_PROBE_IOC_DEVICE_WRITE	_IOW(DMABUF_PROBE_IOC_MAGIC, 8, struct dmabuf_probe_rw)
#define DMABUF_PROBE_IOC_BEGIN_CPU_ACCESS _IOW(DMABUF_PROBE_IOC_MAGIC, 9, struct dmabuf_probe_cpu_access)
#define DMABUF_PROBE_IOC_END_CPU_ACCESS	_IOW(DMABUF_PROBE_IOC_MAGIC, 10, struct dmabuf_probe_cpu_access)
#define DMABUF_PROBE_IOC_VMAP		_IOWR(DMABUF_PROBE_IOC_MAGIC, 11, struct dmabuf_probe_vmap)
#define DMABUF_PROBE_IOC_VUNMAP		_IOW(DMABUF_PROBE_IOC_MAGIC, 12, struct dmabuf_probe_handle)
#define DMABUF_PROBE_IOC_VMAP_READ	_IOW(DMABUF_PROBE_IOC_MAGIC, 13, struct dmabuf_probe_rw)
#define DMABUF_PROBE_IOC_VMAP_WRITE	_IOW(DMABUF_PROBE_IOC_MAGIC, 14, struct dmabuf_probe_rw)
#define DMABUF_PROBE_IOC_KMAP		_IOWR(DMABUF_PROBE_IOC_MAGIC, 15, struct dmabuf_probe_kmap)
#define DMABUF_PROBE_IOC_KUNMAP		_IOW(DMABUF_PROBE_IOC_MAGIC, 16, struct dmabuf_probe_handle)
#define DMABUF_PROBE_IOC_COUNTERS	_IOWR(DMABUF_PROBE_IOC_MAGIC, 17, struct dmabuf_probe_counters)
#define DMABUF_PROBE_IOC_EVENTS		_IOWR(DMABUF_PROBE_IOC_MAGIC, 18, struct dmabuf_probe_events)

#endif /* _UAPI_DMABUF_PROBE_H */
