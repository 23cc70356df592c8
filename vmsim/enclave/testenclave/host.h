/*
 * vmsim test enclave host: what its parts share. The host loads the test enclave the
 * way the Linux SGX kselftest's tools/testing/selftests/sgx/load.c does and runs the
 * kselftest's scenarios (main.c) against it; every line is this project's own.
 */
#ifndef HOST_H
#define HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <asm/sgx.h>

#include "encl_abi.h"

#define PAGE_SIZE		4096
#define SIGSTRUCT_SIZE		1808
/* SIGSTRUCT: byte offsets of the fields the scenarios compare a report with */
#define SIGSTRUCT_MRENCLAVE	960	/* 32 bytes */
#define SIGSTRUCT_ISVPRODID	1024	/* 2 bytes */
#define SIGSTRUCT_ISVSVN	1026	/* 2 bytes */

/* One run of pages added with one SECINFO (load.c struct encl_segment). */
struct encl_segment {
	off_t offset;			/* from the enclave base, page aligned */
	size_t size;			/* a multiple of the page size */
	int prot;			/* what it is mapped with: the SECINFO's, TCS RW */
	uint64_t flags;			/* SECINFO.FLAGS */
	bool measure;			/* added with SGX_PAGE_MEASURE */
	const void *src;		/* its contents */
};

/*
 * An enclave: the ELF file it comes from, its segments (the ELF's PT_LOADs, then
 * the heap), its ELRANGE and the SIGSTRUCT it is initialized with.
 */
struct encl {
	int fd;				/* /dev/sgx_enclave, or -1 */
	void *bin;			/* the ELF file, mapped PROT_READ; or NULL */
	size_t bin_size;
	void *heap;			/* the heap's (zero) contents; or NULL */
	size_t heap_size;
	struct encl_segment *segments;	/* nr_segments, the heap last */
	unsigned int nr_segments;
	uint64_t base;			/* ELRANGE: size-aligned, after encl_build() */
	uint64_t size;			/* ELRANGE: a power of two covering every segment */
	uint8_t sigstruct[SIGSTRUCT_SIZE] __attribute__((aligned(PAGE_SIZE)));
};

/* host_load.c */
bool encl_load(struct encl *encl, const char *elf_path, size_t heap_size);
bool encl_sign(struct encl *encl, const char *sigstructs_path);
bool encl_build(struct encl *encl);
bool encl_map(struct encl *encl);
void encl_delete(struct encl *encl);
uint64_t encl_symbol(const struct encl *encl, const char *name);
off_t encl_data_offset(const struct encl *encl);
size_t encl_loaded_size(const struct encl *encl);

/* host_vdso.c */
void *vdso_symbol(const char *name);

/* host_call.S: __vdso_sgx_enter_enclave() through vdso_sgx_enter_enclave, with
 * every callee-saved register kept whatever the enclave does to it */
extern vdso_sgx_enter_enclave_t vdso_sgx_enter_enclave;
int sgx_enter_enclave_preserving(unsigned long rdi, unsigned long rsi, unsigned long rdx,
				 unsigned int function, unsigned long r8, unsigned long r9,
				 struct sgx_enclave_run *run);

/*
 * host_main.c: running scenarios. A scenario sets its enclave up itself (the
 * kselftest's setup_test_encl()), checks what the kselftest EXPECTs and ASSERTs,
 * and the runner tears the enclave down after it.
 */
struct test {
	struct encl encl;
	struct sgx_enclave_run run;
	const char *elf_path;		/* the enclave */
	const char *sigstructs_path;	/* its SIGSTRUCTs, by heap size */
	size_t oversubscribed_heap;	/* the heap of the *_oversubscribed* scenarios */
	bool verbose;			/* print every enclave's segments and mappings */
	unsigned int failures;		/* checks that failed */
	char skip[128];			/* why the scenario was skipped, or "" */
};

struct scenario {
	const char *name;
	void (*run)(struct test *t);
	bool kselftest;			/* one of the kselftest's TEST_Fs: run by default */
};

extern const struct scenario scenarios[];
extern const unsigned int nr_scenarios;

void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void diag_hex(const char *label, const uint8_t *bytes, size_t n);
bool setup_test_encl(struct test *t, size_t heap_size);
bool check_eq(struct test *t, int line, const char *expr, uint64_t got, uint64_t want);
bool check_eexit(struct test *t, int line, bool clean);
void skip(struct test *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* EXPECT_*: a failed check is counted and the scenario goes on; ASSERT_*: it ends */
#define EXPECT_EQ(t, got, want) \
	check_eq(t, __LINE__, #got, (uint64_t)(got), (uint64_t)(want))
#define ASSERT_EQ(t, got, want) \
	do { if (!EXPECT_EQ(t, got, want)) return; } while (0)
/* run.function is EEXIT; _CLEAN: and run.exception_* are all zero */
#define EXPECT_EEXIT(t)		check_eexit(t, __LINE__, false)
#define EXPECT_EEXIT_CLEAN(t)	check_eexit(t, __LINE__, true)

#endif /* HOST_H */
