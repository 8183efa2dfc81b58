// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf_probe: an in-kernel dma-buf importer for the conformance suite.
 *
 * It imports any dma-buf on behalf of user space (root only) into a few fake
 * importing devices with different DMA properties, and records every DMA-API
 * call the exporter makes on those devices.  See README.md for how coherent
 * and non-coherent devices are realised and which kernels it builds for.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/dma-buf.h>
#include <linux/dma-direct.h>
#include <linux/dma-resv.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/kprobes.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/highmem.h>
#include <linux/vmalloc.h>
#ifdef CONFIG_SWIOTLB
#include <linux/swiotlb.h>
#endif

#include "dmabuf_probe.h"

/* The in-kernel API moved under us; name each change once. */
#define PROBE_HAVE_KMAP (LINUX_VERSION_CODE < KERNEL_VERSION(5, 6, 0))
#define PROBE_VMAP_PTR (LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0))
#define PROBE_VMAP_DMA_BUF_MAP (!PROBE_VMAP_PTR && LINUX_VERSION_CODE < KERNEL_VERSION(5, 18, 0))
#define PROBE_LOCKED_MAP (LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0))
/* dev->dma_io_tlb_mem and is_swiotlb_force_bounce() arrived in 5.15. */
#define PROBE_SWIOTLB_PER_DEVICE \
	(IS_ENABLED(CONFIG_SWIOTLB) && LINUX_VERSION_CODE >= KERNEL_VERSION(5, 15, 0))

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
MODULE_IMPORT_NS(DMA_BUF);
#endif

#if !PROBE_VMAP_PTR && !PROBE_VMAP_DMA_BUF_MAP
#include <linux/iosys-map.h>
typedef struct iosys_map probe_vmap_t;
#elif PROBE_VMAP_DMA_BUF_MAP
#include <linux/dma-buf-map.h>
typedef struct dma_buf_map probe_vmap_t;
#endif

/* ---- the fake importing devices ----------------------------------------- */

#define PROBE_EVENT_SLOTS 4096

/* An event ring, filled from kprobe context. */
struct probe_ring {
	spinlock_t lock;
	u32 index;		/* what events[].device says */
	struct dmabuf_probe_event events[PROBE_EVENT_SLOTS];
	unsigned int head, count, dropped;
};

struct probe_device {
	const char *name;
	bool coherent;
	unsigned int max_segment;	/* 0: no limit */
	struct platform_device *pdev;
	struct device *dev;
	struct probe_ring ring;
	bool bounces;		/* before 5.15: measured once at load, before the hooks */
};

/* Names and properties mirror conformance.records.STANDARD_DEVICES. */
static struct probe_device probe_devices[] = {
	{ .name = "coherent", .coherent = true },
	{ .name = "noncoherent", .coherent = false },
	{ .name = "smallseg", .coherent = false, .max_segment = 65536 },
};
#define NUM_PROBE_DEVICES ARRAY_SIZE(probe_devices)

static atomic64_t probe_seq = ATOMIC64_INIT(0);
static bool probe_kprobes_live;

static bool event_log = true;
module_param(event_log, bool, 0444);
MODULE_PARM_DESC(event_log, "Log the exporter's DMA-API calls with kprobes (default on)");

static struct probe_device *probe_device_of(struct device *dev)
{
	unsigned int i;

	for (i = 0; i < NUM_PROBE_DEVICES; i++)
		if (probe_devices[i].dev && probe_devices[i].dev == dev)
			return &probe_devices[i];
	return NULL;
}

static struct probe_device *probe_device_by_name(const char *name)
{
	unsigned int i;

	for (i = 0; i < NUM_PROBE_DEVICES; i++)
		if (!strcmp(probe_devices[i].name, name))
			return &probe_devices[i];
	return NULL;
}

/* The exporter's own dma_buf_ops calls, whatever device (if any) they are for. */
static struct probe_ring probe_exporter_ring = { .index = DMABUF_PROBE_EXPORTER_LOG };

static void probe_record(struct probe_ring *r, u32 op, u32 dir, u64 length,
			 unsigned long attrs)
{
	struct dmabuf_probe_event *ev;
	unsigned long flags;

	spin_lock_irqsave(&r->lock, flags);
	if (r->count == PROBE_EVENT_SLOTS) {
		/* Keep the oldest: a case reads its log from the start. */
		r->dropped++;
	} else {
		ev = &r->events[(r->head + r->count) % PROBE_EVENT_SLOTS];
		ev->seq = atomic64_inc_return(&probe_seq);
		ev->length = length;
		ev->device = r->index;
		ev->op = op;
		ev->direction = dir;
		ev->flags = (attrs & DMA_ATTR_SKIP_CPU_SYNC) ?
			    DMABUF_PROBE_EVENT_SKIP_CPU_SYNC : 0;
		r->count++;
	}
	spin_unlock_irqrestore(&r->lock, flags);
}

/* ---- the DMA event log: kprobes on the exported DMA API ----------------- */

/*
 * The dma trace events only exist from 6.12, so probe the exported entry
 * points instead.  Each probe reads the C arguments from the registers; the
 * argument order is the function's prototype in kernel/dma/mapping.c.
 */
struct probe_hook {
	const char *symbol;
	const char *alt_symbol;	/* 6.12+ moved some bodies behind inline wrappers */
	u32 op;
	bool sg;		/* args: dev, sg, nents, dir[, attrs] */
	bool sgtable;		/* args: dev, sgt, dir, attrs */
	int len_arg, dir_arg, attrs_arg;	/* -1: none */
	bool required;
	struct kprobe kp;
	bool registered;
};

static u64 sg_bytes(struct scatterlist *sg, int nents)
{
	u64 total = 0;
	int i;

	for (i = 0; i < nents && sg; i++, sg = sg_next(sg))
		total += sg->length;
	return total;
}

static int probe_hook_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct probe_hook *h = container_of(kp, struct probe_hook, kp);
	struct device *dev = (struct device *)regs_get_kernel_argument(regs, 0);
	struct probe_device *pd = probe_device_of(dev);
	unsigned long attrs = 0;
	u64 length;
	u32 dir;

	if (!pd)
		return 0;
	if (h->sgtable) {
		struct sg_table *sgt = (struct sg_table *)regs_get_kernel_argument(regs, 1);

		length = sg_bytes(sgt->sgl, sgt->orig_nents);
	} else if (h->sg) {
		length = sg_bytes((struct scatterlist *)regs_get_kernel_argument(regs, 1),
				  (int)regs_get_kernel_argument(regs, 2));
	} else {
		length = regs_get_kernel_argument(regs, h->len_arg);
	}
	dir = (u32)regs_get_kernel_argument(regs, h->dir_arg);
	if (h->attrs_arg >= 0)
		attrs = regs_get_kernel_argument(regs, h->attrs_arg);
	probe_record(&pd->ring, h->op, dir, length, attrs);
	return 0;
}

#define HOOK_SG(sym, o, a, req) { .symbol = sym, .alt_symbol = "__" sym, .op = o, \
	.sg = true, .dir_arg = 3, .attrs_arg = a, .required = req }
#define HOOK_ONE(sym, o, l, d, a) { .symbol = sym, .alt_symbol = "__" sym, .op = o, \
	.len_arg = l, .dir_arg = d, .attrs_arg = a }

static struct probe_hook probe_hooks[] = {
	HOOK_SG("dma_map_sg_attrs", DMABUF_PROBE_OP_MAP_SG, 4, true),
	{ .symbol = "dma_map_sgtable", .op = DMABUF_PROBE_OP_MAP_SG, .sgtable = true,
	  .dir_arg = 2, .attrs_arg = 3 },
	HOOK_SG("dma_unmap_sg_attrs", DMABUF_PROBE_OP_UNMAP_SG, 4, true),
	HOOK_SG("dma_sync_sg_for_cpu", DMABUF_PROBE_OP_SYNC_SG_FOR_CPU, -1, true),
	HOOK_SG("dma_sync_sg_for_device", DMABUF_PROBE_OP_SYNC_SG_FOR_DEVICE, -1, true),
	/* dma_map_page_attrs(dev, page, offset, size, dir, attrs) */
	HOOK_ONE("dma_map_page_attrs", DMABUF_PROBE_OP_MAP_PAGE, 3, 4, 5),
	/* dma_unmap_page_attrs(dev, addr, size, dir, attrs) */
	HOOK_ONE("dma_unmap_page_attrs", DMABUF_PROBE_OP_UNMAP_PAGE, 2, 3, 4),
	/* dma_sync_single_for_*(dev, addr, size, dir) */
	HOOK_ONE("dma_sync_single_for_cpu", DMABUF_PROBE_OP_SYNC_SINGLE_FOR_CPU, 2, 3, -1),
	HOOK_ONE("dma_sync_single_for_device", DMABUF_PROBE_OP_SYNC_SINGLE_FOR_DEVICE, 2, 3, -1),
};

static void probe_unregister_hooks(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(probe_hooks); i++) {
		if (probe_hooks[i].registered)
			unregister_kprobe(&probe_hooks[i].kp);
		probe_hooks[i].registered = false;
	}
	probe_kprobes_live = false;
}

static void probe_register_hooks(void)
{
	unsigned int i;
	int ret;

	probe_kprobes_live = true;
	for (i = 0; i < ARRAY_SIZE(probe_hooks); i++) {
		struct probe_hook *h = &probe_hooks[i];

		memset(&h->kp, 0, sizeof(h->kp));
		h->kp.symbol_name = h->symbol;
		h->kp.pre_handler = probe_hook_pre;
		ret = register_kprobe(&h->kp);
		if (ret && h->alt_symbol) {
			memset(&h->kp, 0, sizeof(h->kp));
			h->kp.symbol_name = h->alt_symbol;
			h->kp.pre_handler = probe_hook_pre;
			ret = register_kprobe(&h->kp);
		}
		h->registered = !ret;
		if (ret) {
			pr_warn("cannot probe %s (%d)%s\n", h->symbol, ret,
				h->required ? ": DMA event log disabled" : "");
			if (h->required)
				probe_kprobes_live = false;
		}
	}
	/* A log that misses the core calls would lie by omission: drop it. */
	if (!probe_kprobes_live)
		probe_unregister_hooks();
}

/* ---- the exporter-op log: kprobes on the exporter's own dma_buf_ops ------ */

/*
 * The dma-buf core stands between an importer and the exporter: 6.1's
 * dma_buf_vmap counts users itself and calls ops->vmap only for the first,
 * dma_buf_vunmap calls ops->vunmap only for the last.  What the exporter is
 * asked to do (and so whether it balances its own mappings) is only visible
 * at its ops, so the probe places kprobes there.  The ops table is known
 * once an ioctl names a buffer, so hooks are placed lazily, once per
 * function, and logged for every buffer of that exporter.
 */
#define PROBE_OP_HOOK_SLOTS 32

struct probe_op_hook {
	void *fn;		/* the op's address as the ops table holds it */
	u32 op;
	struct kprobe kp;
	bool registered;
};

static struct probe_op_hook probe_op_hooks[PROBE_OP_HOOK_SLOTS];
static unsigned int probe_op_hooks_used;
/* A hook could not be placed: the exporter-op log would miss calls, so it is off. */
static bool probe_exporter_log_broken;
static DEFINE_MUTEX(probe_op_hooks_lock);

static int probe_op_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct probe_op_hook *h = container_of(kp, struct probe_op_hook, kp);
	struct dma_buf *buf = (struct dma_buf *)regs_get_kernel_argument(regs, 0);
	u32 dir = DMA_NONE;

	/* begin/end_cpu_access(dmabuf, direction); vmap/vunmap(dmabuf, map) */
	if (h->op == DMABUF_PROBE_OP_EXPORTER_BEGIN_CPU_ACCESS ||
	    h->op == DMABUF_PROBE_OP_EXPORTER_END_CPU_ACCESS)
		dir = (u32)regs_get_kernel_argument(regs, 1);
	probe_record(&probe_exporter_ring, h->op, dir, buf ? buf->size : 0, 0);
	return 0;
}

static void probe_hook_op(void *fn, u32 op)
{
	struct probe_op_hook *h;
	unsigned int i;
	int ret;

	if (!fn)
		return;	/* the exporter has no such op: there is nothing to miss */
	for (i = 0; i < probe_op_hooks_used; i++)
		if (probe_op_hooks[i].fn == fn)
			return;
	if (probe_op_hooks_used == PROBE_OP_HOOK_SLOTS) {
		pr_warn("no slot left to probe %ps: exporter-op log disabled\n", fn);
		probe_exporter_log_broken = true;
		return;
	}
	h = &probe_op_hooks[probe_op_hooks_used++];
	h->fn = fn;
	h->op = op;
	memset(&h->kp, 0, sizeof(h->kp));
	h->kp.addr = (kprobe_opcode_t *)fn;
	h->kp.pre_handler = probe_op_pre;
	ret = register_kprobe(&h->kp);
	h->registered = !ret;
	if (ret) {
		pr_warn("cannot probe the exporter's %ps (%d): exporter-op log disabled\n",
			fn, ret);
		probe_exporter_log_broken = true;
	}
}

/* Log the exporter of @buf from now on (a no-op once its ops are hooked). */
static void probe_watch_exporter(struct dma_buf *buf)
{
	const struct dma_buf_ops *ops = buf->ops;

	if (!probe_kprobes_live)
		return;
	mutex_lock(&probe_op_hooks_lock);
	probe_hook_op((void *)ops->vmap, DMABUF_PROBE_OP_EXPORTER_VMAP);
	probe_hook_op((void *)ops->vunmap, DMABUF_PROBE_OP_EXPORTER_VUNMAP);
	probe_hook_op((void *)ops->begin_cpu_access, DMABUF_PROBE_OP_EXPORTER_BEGIN_CPU_ACCESS);
	probe_hook_op((void *)ops->end_cpu_access, DMABUF_PROBE_OP_EXPORTER_END_CPU_ACCESS);
	mutex_unlock(&probe_op_hooks_lock);
}

static void probe_unhook_ops(void)
{
	unsigned int i;

	mutex_lock(&probe_op_hooks_lock);
	for (i = 0; i < probe_op_hooks_used; i++)
		if (probe_op_hooks[i].registered)
			unregister_kprobe(&probe_op_hooks[i].kp);
	probe_op_hooks_used = 0;
	mutex_unlock(&probe_op_hooks_lock);
}

/* ---- per-file objects ---------------------------------------------------- */

struct probe_attachment {
	struct probe_device *pd;
	struct dma_buf *buf;
	struct dma_buf_attachment *att;
	struct sg_table *sgt;	/* NULL while unmapped */
	enum dma_data_direction dir;
};

struct probe_vmap {
	struct dma_buf *buf;
#if PROBE_VMAP_PTR
	void *vaddr;
#else
	probe_vmap_t map;
#endif
};

struct probe_kmap {
	struct dma_buf *buf;
	unsigned long page;
	void *vaddr;
};

struct probe_file {
	struct mutex lock;
	struct idr attachments;
	struct idr vmaps;
	struct idr kmaps;
};

static void probe_do_unmap(struct probe_attachment *pa)
{
	if (!pa->sgt)
		return;
#if PROBE_LOCKED_MAP
	dma_buf_unmap_attachment_unlocked(pa->att, pa->sgt, pa->dir);
#else
	dma_buf_unmap_attachment(pa->att, pa->sgt, pa->dir);
#endif
	pa->sgt = NULL;
}

static void probe_free_attachment(struct probe_attachment *pa)
{
	probe_do_unmap(pa);
	dma_buf_detach(pa->buf, pa->att);
	dma_buf_put(pa->buf);
	kfree(pa);
}

static void *probe_vmap_vaddr(struct probe_vmap *pv)
{
#if PROBE_VMAP_PTR
	return pv->vaddr;
#else
	/* I/O memory vmaps cannot be memcpy'd; refuse them at vmap time. */
	return pv->map.vaddr;
#endif
}

static void probe_free_vmap(struct probe_vmap *pv)
{
#if PROBE_VMAP_PTR
	dma_buf_vunmap(pv->buf, pv->vaddr);
#elif PROBE_LOCKED_MAP
	dma_buf_vunmap_unlocked(pv->buf, &pv->map);
#else
	dma_buf_vunmap(pv->buf, &pv->map);
#endif
	dma_buf_put(pv->buf);
	kfree(pv);
}

static void probe_free_kmap(struct probe_kmap *pk)
{
#if PROBE_HAVE_KMAP
	dma_buf_kunmap(pk->buf, pk->page, pk->vaddr);
#endif
	dma_buf_put(pk->buf);
	kfree(pk);
}

static int probe_open(struct inode *inode, struct file *file)
{
	struct probe_file *pf;

	/* The node is 0600 already; this also stops a leaked root fd's users. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->lock);
	idr_init(&pf->attachments);
	idr_init(&pf->vmaps);
	idr_init(&pf->kmaps);
	file->private_data = pf;
	return 0;
}

static int probe_release(struct inode *inode, struct file *file)
{
	struct probe_file *pf = file->private_data;
	struct probe_attachment *pa;
	struct probe_vmap *pv;
	struct probe_kmap *pk;
	int id;

	idr_for_each_entry(&pf->kmaps, pk, id)
		probe_free_kmap(pk);
	idr_for_each_entry(&pf->vmaps, pv, id)
		probe_free_vmap(pv);
	idr_for_each_entry(&pf->attachments, pa, id)
		probe_free_attachment(pa);
	idr_destroy(&pf->kmaps);
	idr_destroy(&pf->vmaps);
	idr_destroy(&pf->attachments);
	kfree(pf);
	return 0;
}

/*
 * BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE.  DMA_NONE (3) is a debugging
 * value: dma_map_sg_attrs and friends BUG_ON(!valid_dma_direction(dir)),
 * so passing it on would take the machine down.
 */
static bool valid_direction(u32 dir)
{
	return dir == DMA_BIDIRECTIONAL || dir == DMA_TO_DEVICE || dir == DMA_FROM_DEVICE;
}

/* ---- device views -------------------------------------------------------- */

/*
 * The device's view of byte @pos of a mapped attachment, up to @avail bytes
 * long and contiguous: memory at the DMA address the exporter mapped for it.
 * Under swiotlb=force a non-coherent device's DMA address is its bounce
 * slot, which only moves at map/unmap/sync time; the coherent device does
 * not bounce, so its DMA address is the page itself (what a snooping device
 * sees).  The sg pages themselves are off limits to importers
 * (CONFIG_DMABUF_DEBUG mangles page_link), so the DMA view is the only one.
 */
static void *probe_device_view(struct probe_attachment *pa, u64 pos, u64 *avail)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sgtable_dma_sg(pa->sgt, sg, i) {
		u64 len = sg_dma_len(sg);

		if (pos < len) {
			phys_addr_t phys = dma_to_phys(pa->pd->dev, sg_dma_address(sg) + pos);

			/* Only direct-mapped RAM is reachable (no IOMMU behind us). */
			if (!pfn_valid(PHYS_PFN(phys)) || PageHighMem(pfn_to_page(PHYS_PFN(phys))))
				return ERR_PTR(-EOPNOTSUPP);
			*avail = min_t(u64, len - pos, PAGE_SIZE - offset_in_page(phys));
			return phys_to_virt(phys);
		}
		pos -= len;
	}
	return ERR_PTR(-EINVAL);
}

static int probe_device_rw(struct probe_attachment *pa, u64 offset, u64 length,
			   void __user *ubuf, bool write)
{
	u64 done = 0;
	char *kbuf;
	int ret = 0;

	if (!pa->sgt)
		return -EINVAL;	/* a device only reaches a mapped buffer */
	kbuf = kvmalloc(length ? length : 1, GFP_KERNEL);
	if (!kbuf)
		return -ENOMEM;
	if (write && copy_from_user(kbuf, ubuf, length)) {
		ret = -EFAULT;
		goto out;
	}
	while (done < length) {
		u64 avail;
		void *p = probe_device_view(pa, offset + done, &avail);

		if (IS_ERR(p)) {
			ret = PTR_ERR(p);
			goto out;
		}
		avail = min(avail, length - done);
		if (write)
			memcpy(p, kbuf + done, avail);
		else
			memcpy(kbuf + done, p, avail);
		done += avail;
	}
	if (!write && copy_to_user(ubuf, kbuf, length))
		ret = -EFAULT;
out:
	kvfree(kbuf);
	return ret;
}

/* ---- ioctls -------------------------------------------------------------- */

static int probe_ioc_info(void __user *arg)
{
	struct dmabuf_probe_info info = {
		.abi_version = DMABUF_PROBE_ABI_VERSION,
		.num_devices = NUM_PROBE_DEVICES,
		.kernel_version = LINUX_VERSION_CODE,
	};

	if (PROBE_HAVE_KMAP)
		info.flags |= DMABUF_PROBE_HAVE_KMAP;
	if (probe_kprobes_live)
		info.flags |= DMABUF_PROBE_HAVE_KPROBES;
	if (probe_kprobes_live && !probe_exporter_log_broken)
		info.flags |= DMABUF_PROBE_HAVE_EXPORTER_LOG;
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

#if !PROBE_SWIOTLB_PER_DEVICE
/*
 * Before 5.15 swiotlb=force is a global the module cannot read (not
 * exported), and it bounces every device, the coherent one too (there is
 * no per-device pool to take away).  So look: map a page for the device
 * and see whether the DMA address is the page's or a bounce slot's.
 */
static bool probe_device_measured_bounce(struct probe_device *pd)
{
	void *page = (void *)__get_free_page(GFP_KERNEL);
	dma_addr_t addr;
	bool bounces;

	if (!page)
		return false;
	addr = dma_map_single(pd->dev, page, PAGE_SIZE, DMA_TO_DEVICE);
	if (dma_mapping_error(pd->dev, addr)) {
		free_page((unsigned long)page);
		return false;
	}
	bounces = dma_to_phys(pd->dev, addr) != virt_to_phys(page);
	dma_unmap_single(pd->dev, addr, PAGE_SIZE, DMA_TO_DEVICE);
	free_page((unsigned long)page);
	return bounces;
}
#endif

static bool probe_device_bounces(struct probe_device *pd)
{
#if PROBE_SWIOTLB_PER_DEVICE
	return is_swiotlb_force_bounce(pd->dev);
#else
	return pd->bounces;
#endif
}

static int probe_ioc_device_info(void __user *arg)
{
	struct dmabuf_probe_device_info di;
	struct probe_device *pd;
	unsigned long boundary;
	unsigned int max_seg;
	size_t max_map;

	if (copy_from_user(&di, arg, sizeof(di)))
		return -EFAULT;
	if (di.index >= NUM_PROBE_DEVICES)
		return -EINVAL;
	pd = &probe_devices[di.index];
	memset(di.name, 0, sizeof(di.name));
	strscpy(di.name, pd->name, sizeof(di.name));
	di.flags = (pd->coherent ? DMABUF_PROBE_DEV_COHERENT : 0) |
		   (probe_device_bounces(pd) ? DMABUF_PROBE_DEV_BOUNCE : 0);
	max_seg = dma_get_max_seg_size(pd->dev);
	di.max_segment = max_seg == UINT_MAX ? 0 : max_seg;
	boundary = dma_get_seg_boundary(pd->dev);
	di.segment_boundary = boundary == ULONG_MAX ? 0 : (u64)boundary + 1;
	max_map = dma_max_mapping_size(pd->dev);
	di.max_mapping = max_map == SIZE_MAX ? 0 : max_map;
	return copy_to_user(arg, &di, sizeof(di)) ? -EFAULT : 0;
}

static int probe_ioc_attach(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_attach a;
	struct probe_attachment *pa;
	struct probe_device *pd;
	int id, ret;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	/* An unterminated name is refused, not cut to a name that may exist. */
	if (!memchr(a.device, 0, sizeof(a.device)))
		return -EINVAL;
	pd = probe_device_by_name(a.device);
	if (!pd)
		return -EINVAL;
	pa = kzalloc(sizeof(*pa), GFP_KERNEL);
	if (!pa)
		return -ENOMEM;
	pa->pd = pd;
	pa->buf = dma_buf_get(a.fd);
	if (IS_ERR(pa->buf)) {
		ret = PTR_ERR(pa->buf);
		goto err_free;
	}
	probe_watch_exporter(pa->buf);
	pa->att = dma_buf_attach(pa->buf, pd->dev);
	if (IS_ERR(pa->att)) {
		ret = PTR_ERR(pa->att);
		goto err_put;
	}
	id = idr_alloc(&pf->attachments, pa, 1, 0, GFP_KERNEL);
	if (id < 0) {
		ret = id;
		goto err_detach;
	}
	a.id = id;
	if (copy_to_user(arg, &a, sizeof(a))) {
		idr_remove(&pf->attachments, id);
		ret = -EFAULT;
		goto err_detach;
	}
	return 0;

err_detach:
	dma_buf_detach(pa->buf, pa->att);
err_put:
	dma_buf_put(pa->buf);
err_free:
	kfree(pa);
	return ret;
}

static int probe_ioc_detach(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_handle h;
	struct probe_attachment *pa;

	if (copy_from_user(&h, arg, sizeof(h)))
		return -EFAULT;
	if (h.pad)
		return -EINVAL;
	pa = idr_remove(&pf->attachments, h.id);
	if (!pa)
		return -EINVAL;
	probe_free_attachment(pa);
	return 0;
}

static int probe_ioc_map(struct probe_file *pf, void __user *arg, bool map)
{
	struct dmabuf_probe_map m;
	struct probe_attachment *pa;
	struct sg_table *sgt;

	if (copy_from_user(&m, arg, sizeof(m)))
		return -EFAULT;
	if (!valid_direction(m.direction) || m.pad)
		return -EINVAL;
	pa = idr_find(&pf->attachments, m.id);
	if (!pa)
		return -EINVAL;
	if (!map) {
		if (!pa->sgt)
			return -EINVAL;
		/* Unmap with the caller's direction: cases test mismatches too. */
		pa->dir = m.direction;
		probe_do_unmap(pa);
		return 0;
	}
	if (pa->sgt)
		return -EBUSY;	/* one mapping per attachment, like a real importer */
#if PROBE_LOCKED_MAP
	sgt = dma_buf_map_attachment_unlocked(pa->att, m.direction);
#else
	sgt = dma_buf_map_attachment(pa->att, m.direction);
#endif
	if (IS_ERR_OR_NULL(sgt))
		return sgt ? PTR_ERR(sgt) : -ENOMEM;
	pa->sgt = sgt;
	pa->dir = m.direction;
	m.nents = sgt->nents;
	return copy_to_user(arg, &m, sizeof(m)) ? -EFAULT : 0;
}

static int probe_ioc_sg(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_sg q;
	struct dmabuf_probe_segment seg;
	struct dmabuf_probe_segment __user *out;
	struct probe_attachment *pa;
	struct scatterlist *sg;
	unsigned int i;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	pa = idr_find(&pf->attachments, q.id);
	if (!pa || !pa->sgt)
		return -EINVAL;
	out = u64_to_user_ptr(q.segments);
	for_each_sgtable_dma_sg(pa->sgt, sg, i) {
		if (i >= q.count)
			break;
		seg.dma_address = sg_dma_address(sg);
		seg.length = sg_dma_len(sg);
		if (copy_to_user(&out[i], &seg, sizeof(seg)))
			return -EFAULT;
	}
	q.count = pa->sgt->nents;
	return copy_to_user(arg, &q, sizeof(q)) ? -EFAULT : 0;
}

static int probe_ioc_device_rw(struct probe_file *pf, void __user *arg, bool write)
{
	struct dmabuf_probe_rw rw;
	struct probe_attachment *pa;

	if (copy_from_user(&rw, arg, sizeof(rw)))
		return -EFAULT;
	if (rw.pad)
		return -EINVAL;
	pa = idr_find(&pf->attachments, rw.id);
	if (!pa)
		return -EINVAL;
	if (rw.length > DMABUF_PROBE_MAX_RW || rw.offset + rw.length < rw.offset ||
	    rw.offset + rw.length > pa->buf->size)
		return -EINVAL;
	return probe_device_rw(pa, rw.offset, rw.length, u64_to_user_ptr(rw.data), write);
}

static int probe_ioc_cpu_access(void __user *arg, bool begin)
{
	struct dmabuf_probe_cpu_access c;
	struct dma_buf *buf;
	int ret;

	if (copy_from_user(&c, arg, sizeof(c)))
		return -EFAULT;
	if (!valid_direction(c.direction))
		return -EINVAL;
	buf = dma_buf_get(c.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	probe_watch_exporter(buf);
	ret = begin ? dma_buf_begin_cpu_access(buf, c.direction) :
		      dma_buf_end_cpu_access(buf, c.direction);
	dma_buf_put(buf);
	return ret;
}

static int probe_ioc_vmap(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_vmap v;
	struct probe_vmap *pv;
	int id, ret;

	if (copy_from_user(&v, arg, sizeof(v)))
		return -EFAULT;
	pv = kzalloc(sizeof(*pv), GFP_KERNEL);
	if (!pv)
		return -ENOMEM;
	pv->buf = dma_buf_get(v.fd);
	if (IS_ERR(pv->buf)) {
		ret = PTR_ERR(pv->buf);
		kfree(pv);
		return ret;
	}
	probe_watch_exporter(pv->buf);
#if PROBE_VMAP_PTR
	pv->vaddr = dma_buf_vmap(pv->buf);
	/*
	 * Before 5.11 dma_buf_vmap() says NULL both for "the exporter has no
	 * vmap" and for a failed vmap; 5.11+ says -EINVAL for the first, so
	 * tell them apart the same way (ION and udmabuf have no vmap on 5.10).
	 */
	ret = pv->vaddr ? 0 : (pv->buf->ops->vmap ? -ENOMEM : -EINVAL);
#elif PROBE_LOCKED_MAP
	ret = dma_buf_vmap_unlocked(pv->buf, &pv->map);
#else
	ret = dma_buf_vmap(pv->buf, &pv->map);
#endif
	if (ret) {
		dma_buf_put(pv->buf);
		kfree(pv);
		return ret;
	}
#if !PROBE_VMAP_PTR
	if (pv->map.is_iomem) {
		probe_free_vmap(pv);
		return -EOPNOTSUPP;
	}
#endif
	if (!probe_vmap_vaddr(pv)) {
		/* "success" without an address (ION's kmap_get on a count driven negative) */
		probe_free_vmap(pv);
		return -EFAULT;
	}
	id = idr_alloc(&pf->vmaps, pv, 1, 0, GFP_KERNEL);
	if (id < 0) {
		probe_free_vmap(pv);
		return id;
	}
	v.id = id;
	v.size = pv->buf->size;
	if (copy_to_user(arg, &v, sizeof(v))) {
		idr_remove(&pf->vmaps, id);
		probe_free_vmap(pv);
		return -EFAULT;
	}
	return 0;
}

static int probe_ioc_vunmap(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_handle h;
	struct probe_vmap *pv;

	if (copy_from_user(&h, arg, sizeof(h)))
		return -EFAULT;
	if (h.pad)
		return -EINVAL;
	pv = idr_remove(&pf->vmaps, h.id);
	if (!pv)
		return -EINVAL;
	probe_free_vmap(pv);
	return 0;
}

/*
 * Whether [@p, @p + @len) of a vmap the probe holds is still mapped.  An
 * exporter that drops its kernel mapping while a vmap is held (ION's
 * kmap_cnt driven to zero by an unbalanced end_cpu_access) leaves the probe
 * a dangling address; copying from it would oops.  The page tables are
 * cleared at vunmap, so a missing page shows here and the access is EFAULT.
 */
static bool probe_vmap_still_mapped(const char *p, u64 len)
{
	const char *page;

	if (!len || !is_vmalloc_addr(p))
		return true;	/* linear-map vmaps (single pages) cannot go away */
	for (page = PTR_ALIGN_DOWN(p, PAGE_SIZE); page < p + len; page += PAGE_SIZE)
		if (!vmalloc_to_page(page))
			return false;
	return true;
}

static int probe_ioc_vmap_rw(struct probe_file *pf, void __user *arg, bool write)
{
	struct dmabuf_probe_rw rw;
	struct probe_vmap *pv;
	char *p;

	if (copy_from_user(&rw, arg, sizeof(rw)))
		return -EFAULT;
	if (rw.pad)
		return -EINVAL;
	pv = idr_find(&pf->vmaps, rw.id);
	if (!pv)
		return -EINVAL;
	if (rw.length > DMABUF_PROBE_MAX_RW || rw.offset + rw.length < rw.offset ||
	    rw.offset + rw.length > pv->buf->size)
		return -EINVAL;
	p = (char *)probe_vmap_vaddr(pv) + rw.offset;
	if (!probe_vmap_still_mapped(p, rw.length))
		return -EFAULT;
	if (write)
		return copy_from_user(p, u64_to_user_ptr(rw.data), rw.length) ? -EFAULT : 0;
	return copy_to_user(u64_to_user_ptr(rw.data), p, rw.length) ? -EFAULT : 0;
}

static int probe_ioc_kmap(struct probe_file *pf, void __user *arg)
{
#if PROBE_HAVE_KMAP
	struct dmabuf_probe_kmap k;
	struct probe_kmap *pk;
	int id;

	if (copy_from_user(&k, arg, sizeof(k)))
		return -EFAULT;
	if (k.pad)
		return -EINVAL;
	pk = kzalloc(sizeof(*pk), GFP_KERNEL);
	if (!pk)
		return -ENOMEM;
	pk->buf = dma_buf_get(k.fd);
	if (IS_ERR(pk->buf)) {
		id = PTR_ERR(pk->buf);
		kfree(pk);
		return id;
	}
	if (k.page >= PAGE_ALIGN(pk->buf->size) >> PAGE_SHIFT) {
		dma_buf_put(pk->buf);
		kfree(pk);
		return -EINVAL;
	}
	pk->page = k.page;
	pk->vaddr = dma_buf_kmap(pk->buf, k.page);
	if (IS_ERR_OR_NULL(pk->vaddr)) {
		id = pk->vaddr ? PTR_ERR(pk->vaddr) : -ENOMEM;
		dma_buf_put(pk->buf);
		kfree(pk);
		return id;
	}
	id = idr_alloc(&pf->kmaps, pk, 1, 0, GFP_KERNEL);
	if (id < 0) {
		probe_free_kmap(pk);
		return id;
	}
	k.id = id;
	if (copy_to_user(arg, &k, sizeof(k))) {
		idr_remove(&pf->kmaps, id);
		probe_free_kmap(pk);
		return -EFAULT;
	}
	return 0;
#else
	return -EOPNOTSUPP;	/* dma_buf_kmap was removed in 5.6 */
#endif
}

static int probe_ioc_kunmap(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_handle h;
	struct probe_kmap *pk;

	if (!PROBE_HAVE_KMAP)
		return -EOPNOTSUPP;
	if (copy_from_user(&h, arg, sizeof(h)))
		return -EFAULT;
	if (h.pad)
		return -EINVAL;
	pk = idr_remove(&pf->kmaps, h.id);
	if (!pk)
		return -EINVAL;
	probe_free_kmap(pk);
	return 0;
}

static int probe_ioc_counters(struct probe_file *pf, void __user *arg)
{
	struct dmabuf_probe_counters c;
	struct dma_buf_attachment *att;
	struct probe_attachment *pa;
	struct dma_buf *buf;
	int id;

	if (copy_from_user(&c, arg, sizeof(c)))
		return -EFAULT;
	if (c.pad)
		return -EINVAL;
	buf = dma_buf_get(c.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	probe_watch_exporter(buf);
	c.attachments = 0;
	dma_resv_lock(buf->resv, NULL);
	list_for_each_entry(att, &buf->attachments, node)
		c.attachments++;
	dma_resv_unlock(buf->resv);
	c.maps = 0;
	idr_for_each_entry(&pf->attachments, pa, id)
		if (pa->buf == buf && pa->sgt)
			c.maps++;
	c.vmap_count = READ_ONCE(buf->vmapping_counter);
	dma_buf_put(buf);
	return copy_to_user(arg, &c, sizeof(c)) ? -EFAULT : 0;
}

/* Copy up to @room events of @r into @batch (clearing them if asked); adds its drops. */
static unsigned int probe_ring_take(struct probe_ring *r, struct dmabuf_probe_event *batch,
				    unsigned int room, bool clear, unsigned int *dropped)
{
	unsigned long flags;
	unsigned int take, i;

	spin_lock_irqsave(&r->lock, flags);
	take = min(r->count, room);
	for (i = 0; i < take; i++)
		batch[i] = r->events[(r->head + i) % PROBE_EVENT_SLOTS];
	*dropped += r->dropped;
	if (clear) {
		r->head = (r->head + take) % PROBE_EVENT_SLOTS;
		r->count -= take;
		/* Drops are reported until the log they happened to is read empty. */
		if (!r->count)
			r->dropped = 0;
	}
	spin_unlock_irqrestore(&r->lock, flags);
	return take;
}

static int probe_ioc_events(void __user *arg)
{
	struct dmabuf_probe_events q;
	struct dmabuf_probe_event __user *out;
	struct dmabuf_probe_event *batch;
	unsigned int n = 0, dropped = 0, d;
	bool clear, exporter;
	int ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	exporter = q.device == DMABUF_PROBE_EXPORTER_LOG;
	if (q.device != DMABUF_PROBE_ALL_DEVICES && !exporter && q.device >= NUM_PROBE_DEVICES)
		return -EINVAL;
	if (q.flags & ~DMABUF_PROBE_EVENTS_CLEAR)
		return -EINVAL;
	if (exporter && (!probe_kprobes_live || probe_exporter_log_broken))
		return -EOPNOTSUPP;	/* a log with holes must not read as "no call made" */
	clear = q.flags & DMABUF_PROBE_EVENTS_CLEAR;
	q.count = min_t(u32, q.count, PROBE_EVENT_SLOTS * NUM_PROBE_DEVICES);
	batch = kvmalloc_array(q.count ? q.count : 1, sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	if (exporter) {
		n = probe_ring_take(&probe_exporter_ring, batch, q.count, clear, &dropped);
	} else {
		/* Per device in order; user space merges by seq. */
		for (d = 0; d < NUM_PROBE_DEVICES; d++) {
			if (q.device != DMABUF_PROBE_ALL_DEVICES && q.device != d)
				continue;
			n += probe_ring_take(&probe_devices[d].ring, batch + n, q.count - n,
					     clear, &dropped);
		}
	}
	out = u64_to_user_ptr(q.events);
	if (n && copy_to_user(out, batch, n * sizeof(*batch)))
		ret = -EFAULT;
	kvfree(batch);
	if (ret)
		return ret;
	q.count = n;
	q.dropped = dropped;
	return copy_to_user(arg, &q, sizeof(q)) ? -EFAULT : 0;
}

static long probe_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct probe_file *pf = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	/* One lock per file: cases are sequential, and it keeps ids stable. */
	mutex_lock(&pf->lock);
	switch (cmd) {
	case DMABUF_PROBE_IOC_INFO:
		ret = probe_ioc_info(uarg);
		break;
	case DMABUF_PROBE_IOC_DEVICE_INFO:
		ret = probe_ioc_device_info(uarg);
		break;
	case DMABUF_PROBE_IOC_ATTACH:
		ret = probe_ioc_attach(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_DETACH:
		ret = probe_ioc_detach(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_MAP:
		ret = probe_ioc_map(pf, uarg, true);
		break;
	case DMABUF_PROBE_IOC_UNMAP:
		ret = probe_ioc_map(pf, uarg, false);
		break;
	case DMABUF_PROBE_IOC_SG:
		ret = probe_ioc_sg(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_DEVICE_READ:
		ret = probe_ioc_device_rw(pf, uarg, false);
		break;
	case DMABUF_PROBE_IOC_DEVICE_WRITE:
		ret = probe_ioc_device_rw(pf, uarg, true);
		break;
	case DMABUF_PROBE_IOC_BEGIN_CPU_ACCESS:
		ret = probe_ioc_cpu_access(uarg, true);
		break;
	case DMABUF_PROBE_IOC_END_CPU_ACCESS:
		ret = probe_ioc_cpu_access(uarg, false);
		break;
	case DMABUF_PROBE_IOC_VMAP:
		ret = probe_ioc_vmap(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_VUNMAP:
		ret = probe_ioc_vunmap(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_VMAP_READ:
		ret = probe_ioc_vmap_rw(pf, uarg, false);
		break;
	case DMABUF_PROBE_IOC_VMAP_WRITE:
		ret = probe_ioc_vmap_rw(pf, uarg, true);
		break;
	case DMABUF_PROBE_IOC_KMAP:
		ret = probe_ioc_kmap(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_KUNMAP:
		ret = probe_ioc_kunmap(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_COUNTERS:
		ret = probe_ioc_counters(pf, uarg);
		break;
	case DMABUF_PROBE_IOC_EVENTS:
		ret = probe_ioc_events(uarg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&pf->lock);
	return ret;
}

static const struct file_operations probe_fops = {
	.owner = THIS_MODULE,
	.open = probe_open,
	.release = probe_release,
	.unlocked_ioctl = probe_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice probe_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "dmabuf_probe",
	.fops = &probe_fops,
	.mode = 0600,	/* root only: it hands kernel mappings to user space */
};

/* ---- module ------------------------------------------------------------- */

static void probe_remove_devices(void)
{
	unsigned int i;

	for (i = 0; i < NUM_PROBE_DEVICES; i++) {
		if (probe_devices[i].pdev)
			platform_device_unregister(probe_devices[i].pdev);
		probe_devices[i].pdev = NULL;
		probe_devices[i].dev = NULL;
	}
}

static int probe_add_device(struct probe_device *pd, int id)
{
	int ret;

	spin_lock_init(&pd->ring.lock);
	pd->ring.index = id;
	pd->pdev = platform_device_register_simple("dmabuf_probe", id, NULL, 0);
	if (IS_ERR(pd->pdev)) {
		ret = PTR_ERR(pd->pdev);
		pd->pdev = NULL;
		return ret;
	}
	pd->dev = &pd->pdev->dev;
	ret = dma_set_mask_and_coherent(pd->dev, DMA_BIT_MASK(64));
	if (ret)
		ret = dma_set_mask_and_coherent(pd->dev, DMA_BIT_MASK(32));
	if (ret)
		return ret;
	/*
	 * The platform bus default is 64 KiB; only smallseg should be limited.
	 * The result is not used: it returns void from 6.11, and before that
	 * failed only without dma_parms, which platform devices always have.
	 */
	if (!pd->dev->dma_parms)
		return -EINVAL;
	dma_set_max_seg_size(pd->dev, pd->max_segment ? pd->max_segment : UINT_MAX);
#if defined(CONFIG_ARCH_HAS_SYNC_DMA_FOR_DEVICE) || \
    defined(CONFIG_ARCH_HAS_SYNC_DMA_FOR_CPU) || \
    defined(CONFIG_ARCH_HAS_SYNC_DMA_FOR_CPU_ALL)
	/* Where the architecture does cache maintenance, make it real. */
	pd->dev->dma_coherent = pd->coherent;
#endif
#if PROBE_SWIOTLB_PER_DEVICE
	/*
	 * Booted with swiotlb=force, every device bounces.  A coherent device
	 * must not: it stands for one that snoops the CPU caches, so it gets
	 * no swiotlb pool and maps the pages directly (its DMA mask covers
	 * all memory, so dma-direct never needs a bounce for it).
	 */
	if (pd->coherent)
		pd->dev->dma_io_tlb_mem = NULL;
#endif
	return 0;
}

static int __init probe_init(void)
{
	unsigned int i;
	int ret;

	for (i = 0; i < NUM_PROBE_DEVICES; i++) {
		ret = probe_add_device(&probe_devices[i], i);
		if (ret) {
			pr_err("cannot set up device %s: %d\n", probe_devices[i].name, ret);
			probe_remove_devices();
			return ret;
		}
	}
	spin_lock_init(&probe_exporter_ring.lock);
#if !PROBE_SWIOTLB_PER_DEVICE
	/*
	 * The measurement maps a page: done here, before the DMA-API hooks are
	 * placed, it never shows in a device's event log as a call of the
	 * exporter's (it did, in the first case of a 5.10 run).
	 */
	for (i = 0; i < NUM_PROBE_DEVICES; i++)
		probe_devices[i].bounces = probe_device_measured_bounce(&probe_devices[i]);
#endif
	if (event_log)
		probe_register_hooks();
	ret = misc_register(&probe_misc);
	if (ret) {
		probe_unregister_hooks();
		probe_remove_devices();
		return ret;
	}
	pr_info("ready: %zu devices, DMA event log %s\n", NUM_PROBE_DEVICES,
		probe_kprobes_live ? "on" : "off");
	return 0;
}

static void __exit probe_exit(void)
{
	misc_deregister(&probe_misc);
	probe_unhook_ops();
	probe_unregister_hooks();
	probe_remove_devices();
}

module_init(probe_init);
module_exit(probe_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dma-buf conformance probe: an in-kernel importer that reports what exporters do");
