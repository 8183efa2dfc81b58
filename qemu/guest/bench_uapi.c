/*
 * The C side of the bindings benchmark: the same ioctl loops the Python
 * bindings run (allocate+close on a DMA-BUF heap, SYNC start/end pairs),
 * timed in the same guest.  Prints "alloc_close_us=X sync_start_end_us=Y".
 * Usage: bench_uapi /dev/dma_heap/system N
 */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int alloc_fd(int heap)
{
	struct dma_heap_allocation_data a = {
		.len = 4096, .fd_flags = O_RDWR | O_CLOEXEC,
	};

	if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a) < 0) {
		perror("DMA_HEAP_IOCTL_ALLOC");
		exit(1);
	}
	return a.fd;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	int heap = open(argc > 1 ? argv[1] : "/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
	struct dma_buf_sync start = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	struct dma_buf_sync end = { DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW };
	double t0, alloc_close, sync_pair;
	int i, fd;

	if (heap < 0) {
		perror("open heap");
		return 1;
	}
	t0 = now_us();
	for (i = 0; i < n; i++)
		close(alloc_fd(heap));
	alloc_close = (now_us() - t0) / n;

	fd = alloc_fd(heap);
	t0 = now_us();
	for (i = 0; i < n; i++) {
		if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &start) || ioctl(fd, DMA_BUF_IOCTL_SYNC, &end)) {
			perror("DMA_BUF_IOCTL_SYNC");
			return 1;
		}
	}
	sync_pair = (now_us() - t0) / n;
	printf("alloc_close_us=%.2f sync_start_end_us=%.2f\n", alloc_close, sync_pair);
	return 0;
}
