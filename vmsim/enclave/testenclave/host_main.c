// SPDX-License-Identifier: GPL-2.0
/*
 * vmsim test enclave host: the command line and the scenario runner, printing one
 * TAP line per scenario (the Linux kselftest harness's output,
 * tools/testing/selftests/kselftest_harness.h, in its plain form).
 *
 *   sgx_host [-v] [-H BYTES] ENCLAVE.elf SIGSTRUCTS [SCENARIO...]
 *   sgx_host -l
 *
 * Without SCENARIOs, the sixteen of the kselftest (tools/testing/selftests/sgx/
 * main.c), in its order. -H sizes the heap of the two *_oversubscribed* scenarios
 * (default: all the EPC, from CPUID leaf 0x12, as the kselftest does); -v prints
 * every enclave's segments and mappings; -l lists the scenarios. Exit status: 0 if
 * every scenario passed or was skipped, 1 if one failed, 4 (the kselftest's SKIP)
 * without /dev/sgx_enclave, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

#define KSFT_SKIP		4

vdso_sgx_enter_enclave_t vdso_sgx_enter_enclave;

void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void diag_hex(const char *label, const uint8_t *bytes, size_t n)
{
	printf("# %s ", label);
	while (n--)
		printf("%02x", *bytes++);
	putchar('\n');
}

bool check_eq(struct test *t, int line, const char *expr, uint64_t got, uint64_t want)
{
	if (got == want)
		return true;
	diag("line %d: %s is %#llx, expected %#llx", line, expr, (unsigned long long)got,
	     (unsigned long long)want);
	t->failures++;
	return false;
}

bool check_eexit(struct test *t, int line, bool clean)
{
	const struct sgx_enclave_run *run = &t->run;

	if (run->function == EEXIT &&
	    (!clean || (!run->exception_vector && !run->exception_error_code && !run->exception_addr)))
		return true;
	diag("line %d: run.function %u, exception vector %u, error code %#x, address %#llx; "
	     "expected a clean EEXIT", line, run->function, run->exception_vector,
	     run->exception_error_code, (unsigned long long)run->exception_addr);
	t->failures++;
	return false;
}

void skip(struct test *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->skip, sizeof(t->skip), fmt, ap);
	va_end(ap);
}

/* The enclave's lines of /proc/self/maps. */
static void diag_mappings(void)
{
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "r");

	if (!maps)
		return;
	while (fgets(line, sizeof(line), maps)) {
		line[strcspn(line, "\n")] = '\0';
		if (strstr(line, "/dev/sgx_enclave"))
			diag("%s", line);
	}
	fclose(maps);
}

static void diag_segments(const struct encl *encl)
{
	unsigned int i;

	for (i = 0; i < encl->nr_segments; i++)
		diag("segment 0x%08lx 0x%08zx prot %d flags 0x%04llx%s",
		     (unsigned long)encl->segments[i].offset, encl->segments[i].size,
		     encl->segments[i].prot, (unsigned long long)encl->segments[i].flags,
		     encl->segments[i].measure ? "" : " unmeasured");
}

/*
 * main.c setup_test_encl() and the fixture's start: load, sign, build and map the
 * enclave with a heap of heap_size bytes, find the vDSO's entry, run.tcs = TCS #1.
 */
bool setup_test_encl(struct test *t, size_t heap_size)
{
	bool ok = encl_load(&t->encl, t->elf_path, heap_size) &&
		  encl_sign(&t->encl, t->sigstructs_path) && encl_build(&t->encl) &&
		  encl_map(&t->encl);

	if (ok && !vdso_sgx_enter_enclave) {
		vdso_sgx_enter_enclave = vdso_symbol("__vdso_sgx_enter_enclave");
		if (!vdso_sgx_enter_enclave) {
			diag("the vDSO has no __vdso_sgx_enter_enclave");
			ok = false;
		}
	}
	if (!ok || t->verbose) {
		diag_segments(&t->encl);
		diag_mappings();
	}
	if (!ok) {
		diag("cannot set the test enclave up");
		t->failures++;
		return false;
	}
	memset(&t->run, 0, sizeof(t->run));
	t->run.tcs = t->encl.base;
	return true;
}

static const struct scenario *find_scenario(const char *name)
{
	unsigned int i;

	for (i = 0; i < nr_scenarios; i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}

enum outcome { PASSED, SKIPPED, FAILED };

/* Run one scenario on a fresh test and print its TAP line. */
static enum outcome run_scenario(const struct test *config, const struct scenario *s,
				 unsigned int n)
{
	struct test t = *config;
	enum outcome outcome;

	t.encl.fd = -1;
	s->run(&t);
	encl_delete(&t.encl);
	outcome = t.failures ? FAILED : t.skip[0] ? SKIPPED : PASSED;
	if (outcome == SKIPPED)
		printf("ok %u %s # SKIP %s\n", n, s->name, t.skip);
	else
		printf("%s %u %s\n", outcome == PASSED ? "ok" : "not ok", n, s->name);
	return outcome;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-v] [-H BYTES] ENCLAVE.elf SIGSTRUCTS [SCENARIO...]\n"
		"       %s -l\n", prog, prog);
	return 2;
}

/*
 * The scenarios named on the command line, or the kselftest's; how many, or 0 after
 * printing why a name is not one.
 */
static unsigned int choose(char **names, unsigned int nr_names, const char *prog,
			   const struct scenario **chosen, unsigned int room)
{
	unsigned int n = 0, i;

	if (nr_names > room) {
		fprintf(stderr, "%s: more than %u scenarios\n", prog, room);
		return 0;
	}
	for (i = 0; i < nr_names; i++) {
		chosen[n] = find_scenario(names[i]);
		if (!chosen[n++]) {
			fprintf(stderr, "%s: no scenario %s (-l lists them)\n", prog, names[i]);
			return 0;
		}
	}
	for (i = 0; !nr_names && i < nr_scenarios; i++)
		if (scenarios[i].kselftest)
			chosen[n++] = &scenarios[i];
	return n;
}

int main(int argc, char *argv[])
{
	const struct scenario *chosen[64];
	struct test config = { 0 };
	unsigned int nr_chosen, totals[3] = { 0 }, i;
	char *end;
	int opt, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "vlH:")) != -1) {
		switch (opt) {
		case 'v':
			config.verbose = true;
			break;
		case 'l':
			for (i = 0; i < nr_scenarios; i++)
				printf("%s%s\n", scenarios[i].name, scenarios[i].kselftest ? "" : " (ours)");
			return 0;
		case 'H':
			config.oversubscribed_heap = strtoull(optarg, &end, 0);
			if (*end || !config.oversubscribed_heap || config.oversubscribed_heap % PAGE_SIZE) {
				fprintf(stderr, "%s: -H %s: not a positive multiple of %d\n", argv[0], optarg,
					PAGE_SIZE);
				return 2;
			}
			break;
		default:
			return usage(argv[0]);
		}
	}
	if (argc - optind < 2)
		return usage(argv[0]);
	config.elf_path = argv[optind];
	config.sigstructs_path = argv[optind + 1];
	nr_chosen = choose(argv + optind + 2, argc - optind - 2, argv[0], chosen,
			   sizeof(chosen) / sizeof(chosen[0]));
	if (!nr_chosen)
		return 2;

	printf("TAP version 13\n");
	fd = open("/dev/sgx_enclave", O_RDWR);
	if (fd < 0) {
		printf("1..0 # SKIP /dev/sgx_enclave: %s\n", strerror(errno));
		return KSFT_SKIP;
	}
	close(fd);
	printf("1..%u\n", nr_chosen);
	for (i = 0; i < nr_chosen; i++)
		totals[run_scenario(&config, chosen[i], i + 1)]++;
	printf("# Totals: pass:%u fail:%u skip:%u\n", totals[PASSED], totals[FAILED],
	       totals[SKIPPED]);
	return totals[FAILED] ? 1 : 0;
}
