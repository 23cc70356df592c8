/*
 * native_mm.c - the native half of benchmarks/bench_mm.py.
 *
 * Measures, on the running kernel, the cost of the same four mm calls the
 * Python benchmark runs on the vmsim model, with N existing VMAs:
 *
 *   split   mprotect(test+PG, PG, PROT_READ)            1 VMA -> 3 VMAs
 *   merge   mprotect(test+PG, PG, PROT_READ|PROT_WRITE) 3 VMAs -> 1 VMA
 *   mmap    mmap(slot, PG, RW, MAP_PRIVATE|MAP_ANONYMOUS) (hint, lands at slot)
 *   munmap  munmap(slot, PG)
 *
 * plus the cost per line of reading /proc/self/maps: open + read to EOF + close,
 * after warm-up reads, repeated for at least MAPS_MIN_REPS reads and MAPS_MS
 * milliseconds; the minimum read is reported (and the median, to show the
 * noise).  Reading the file is deterministic work, and everything else on a
 * shared machine (other tasks, the hypervisor's other guests sharing the L3)
 * only ever adds time to a read, so the minimum over many reads is the steady
 * figure; bench_mm.py takes the same statistic of the model's p.maps().
 *
 * The N VMAs are built like spec/mm_probe_maxmap.c does it: a PROT_NONE
 * MAP_NORESERVE reservation with alternate pages mprotected to PROT_READ, so
 * neighbours differ and never merge.  There are two reservations, A below and B
 * above the test area, so the measured VMAs sit in the middle of the tree.  A
 * reservation whose pages 2,4,..,2k are PROT_READ is 2k+1 VMAs.
 *
 * Usage: native_mm ITERS RUNS MAPS_MIN_REPS MAPS_MS N1 [N2 ...]   (N even, ascending)
 * RUNS = 0 skips the calls, MAPS_MS = 0 the maps reads: bench_mm.py runs the
 * maps reads in fresh processes, alternating with the model's.
 * Output: one "key=value ..." line per record, parsed by bench_mm.py.
 * Times are in nanoseconds; the clock_gettime overhead is measured and
 * subtracted from the per-call times.
 *
 * Layout constants must match bench_mm.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PG 4096UL
#define REGION_A 0x100000000000UL
#define TEST_BASE 0x110000000000UL
#define REGION_B 0x120000000000UL
#define TEST_VMA (TEST_BASE)            /* 3 pages */
#define SLOT (TEST_BASE + 8 * PG)       /* 1 page, gaps on both sides */

#define MAPS_WARMUP_READS 3

/* Holds one whole read of /proc/self/maps; grown (and prefaulted) only outside timed reads. */
static char *mapsbuf;
static size_t mapsbuf_size;

static inline long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "native_mm: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Double mapsbuf and touch every page of it, so no timed read takes a page fault. */
static void grow_mapsbuf(void)
{
	mapsbuf_size = mapsbuf_size ? 2 * mapsbuf_size : 1UL << 20;
	mapsbuf = realloc(mapsbuf, mapsbuf_size);
	if (!mapsbuf)
		die("realloc maps buffer");
	memset(mapsbuf, 0, mapsbuf_size);
}

/*
 * Read all of /proc/self/maps; returns the number of lines.  A read that fills
 * mapsbuf grows it and starts over, so the timed reads (after warm-up reads of
 * the same VMA count) never grow it.
 */
static long read_maps(size_t *bytes)
{
	size_t off;
	ssize_t r = 0;
	for (;;) {
		int fd = open("/proc/self/maps", O_RDONLY);
		if (fd < 0)
			die("open /proc/self/maps");
		off = 0;
		while (off < mapsbuf_size && (r = read(fd, mapsbuf + off, mapsbuf_size - off)) > 0)
			off += r;
		if (r < 0)
			die("read /proc/self/maps");
		close(fd);
		if (off < mapsbuf_size)
			break;
		grow_mapsbuf();
	}
	long lines = 0;
	for (size_t i = 0; i < off; i++)
		lines += mapsbuf[i] == '\n';
	if (bytes)
		*bytes = off;
	return lines;
}

static long count_range(unsigned long lo, unsigned long hi)
{
	size_t bytes;
	read_maps(&bytes);
	long n = 0;
	char *p = mapsbuf, *end = mapsbuf + bytes;
	while (p < end) {
		unsigned long s = strtoul(p, NULL, 16);
		if (s >= lo && s < hi)
			n++;
		char *nl = memchr(p, '\n', end - p);
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

#define MAPS_MAX_REPS 100000

/*
 * Time reads of /proc/self/maps with n VMAs built: warm-up reads, then at least
 * min_reps reads and budget_ns; prints the minimum and the median read.
 */
static void measure_maps(long n, int min_reps, long long budget_ns)
{
	static double ms[MAPS_MAX_REPS];
	long lines = 0;
	int reps = 0;
	for (int i = 0; i < MAPS_WARMUP_READS; i++)
		lines = read_maps(NULL);
	long long start = now_ns();
	while (reps < min_reps || (now_ns() - start < budget_ns && reps < MAPS_MAX_REPS)) {
		long long t0 = now_ns();
		read_maps(NULL);
		long long t1 = now_ns();
		ms[reps++] = (double)(t1 - t0);
	}
	double med = median(ms, reps);	/* sorts ms */
	printf("maps n=%ld lines=%ld reps=%d min_read_ns=%.1f median_read_ns=%.1f\n", n, lines, reps,
	       ms[0], med);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s ITERS RUNS MAPS_MIN_REPS MAPS_MS N1 [N2 ...]\n", argv[0]);
		return 2;
	}
	long iters = atol(argv[1]);
	int runs = atoi(argv[2]);
	int maps_min_reps = atoi(argv[3]);
	long long maps_ns = atoll(argv[4]) * 1000000LL;
	int nsizes = argc - 5;
	long *sizes = calloc(nsizes, sizeof *sizes);
	long nmax = 0;
	for (int i = 0; i < nsizes; i++) {
		sizes[i] = atol(argv[5 + i]);
		if (sizes[i] < 2 || sizes[i] % 2 || (i && sizes[i] < sizes[i - 1])) {
			fprintf(stderr, "native_mm: sizes must be even, >= 2, ascending\n");
			return 2;
		}
		if (sizes[i] > nmax)
			nmax = sizes[i];
	}
	grow_mapsbuf();

	long limit = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f) {
		if (fscanf(f, "%ld", &limit) != 1)
			limit = -1;
		fclose(f);
	}

	/* clock overhead: median of many back-to-back reads */
	double ov[31];
	for (int r = 0; r < 31; r++) {
		long long t0 = now_ns();
		for (int i = 0; i < 10000; i++)
			now_ns();
		ov[r] = (now_ns() - t0) / 10000.0;
	}
	double clock_ns = median(ov, 31);

	long baseline = read_maps(NULL);
	printf("info max_map_count=%ld baseline_lines=%ld clock_ns=%.2f\n", limit, baseline, clock_ns);

	/* k per region: pages 2..2k PROT_READ -> 2k+1 VMAs; need 2k+2 pages */
	long kmax = (nmax - 2) / 2 / 2 + 2;
	size_t region_len = (2 * kmax + 4) * PG;
	char *A = mmap((void *)REGION_A, region_len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	char *B = mmap((void *)REGION_B, region_len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	char *T = mmap((void *)TEST_VMA, 3 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (A != (char *)REGION_A || B != (char *)REGION_B || T != (char *)TEST_VMA)
		die("fixed reservations");
	char *slot = (char *)SLOT;

	/* sanity: the split really splits, the merge really merges, mmap lands at slot */
	if (mprotect(T + PG, PG, PROT_READ))
		die("mprotect split");
	long c3 = count_range(TEST_BASE, TEST_BASE + 64 * PG);
	if (mprotect(T + PG, PG, PROT_READ | PROT_WRITE))
		die("mprotect merge");
	long c1 = count_range(TEST_BASE, TEST_BASE + 64 * PG);
	void *m = mmap(slot, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long c2 = count_range(TEST_BASE, TEST_BASE + 64 * PG);
	munmap(m, PG);
	if (c3 != 3 || c1 != 1 || m != slot || c2 != 2) {
		fprintf(stderr, "native_mm: sanity check failed: split->%ld merge->%ld mmap at %p (%ld)\n",
			c3, c1, m, c2);
		return 1;
	}

	long kA = 0, kB = 0;
	double *split = calloc(runs, sizeof(double)), *merge = calloc(runs, sizeof(double));
	double *mm = calloc(runs, sizeof(double)), *mu = calloc(runs, sizeof(double));

	for (int si = 0; si < nsizes; si++) {
		long n = sizes[si];
		long half = (n - 2) / 2;
		long tA = (half + 1) / 2, tB = half / 2;
		for (; kA < tA; kA++)
			if (mprotect(A + 2 * (kA + 1) * PG, PG, PROT_READ))
				die("mprotect build A");
		for (; kB < tB; kB++)
			if (mprotect(B + 2 * (kB + 1) * PG, PG, PROT_READ))
				die("mprotect build B");
		long built = count_range(REGION_A, REGION_A + region_len) +
			     count_range(REGION_B, REGION_B + region_len);
		if (built != n) {
			fprintf(stderr, "native_mm: built %ld VMAs, wanted %ld\n", built, n);
			return 1;
		}

		for (int r = 0; r < runs; r++) {
			long long s_split = 0, s_merge = 0, s_mmap = 0, s_munmap = 0;
			for (long i = 0; i < iters; i++) {
				long long t0 = now_ns();
				mprotect(T + PG, PG, PROT_READ);
				long long t1 = now_ns();
				mprotect(T + PG, PG, PROT_READ | PROT_WRITE);
				long long t2 = now_ns();
				void *p = mmap(slot, PG, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				long long t3 = now_ns();
				munmap(p, PG);
				long long t4 = now_ns();
				s_split += t1 - t0;
				s_merge += t2 - t1;
				s_mmap += t3 - t2;
				s_munmap += t4 - t3;
			}
			split[r] = (double)s_split / iters - clock_ns;
			merge[r] = (double)s_merge / iters - clock_ns;
			mm[r] = (double)s_mmap / iters - clock_ns;
			mu[r] = (double)s_munmap / iters - clock_ns;
		}
		if (runs)
			printf("calls n=%ld split_ns=%.2f merge_ns=%.2f mmap_ns=%.2f munmap_ns=%.2f\n", n,
			       median(split, runs), median(merge, runs), median(mm, runs), median(mu, runs));

		if (maps_ns)
			measure_maps(n, maps_min_reps, maps_ns);
	}
	return 0;
}
