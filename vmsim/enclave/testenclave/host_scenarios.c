// SPDX-License-Identifier: GPL-2.0
/*
 * vmsim test enclave host: the scenarios. The first sixteen are the Linux SGX
 * kselftest's TEST_Fs (tools/testing/selftests/sgx/main.c, spec/sgx-driver.md §6):
 * the same calls, in the same order, checking what it checks; ereport and egetkey
 * are this project's, for the enclave's EREPORT and EGETKEY operations.
 *
 * "clobbered" calls enter the vDSO function directly, trusting the enclave to keep
 * the callee-saved registers; the others go through sgx_enter_enclave_preserving().
 * Each operation is a struct of its own in this function's frame, as in main.c: an
 * operation resumed after an AEX re-reads its struct.
 */
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "host.h"

#define ENCL_HEAP_SIZE_DEFAULT	PAGE_SIZE
#define MAGIC			0x1122334455667788ULL
#define MAGIC2			0x8877665544332211ULL
#define SGX_CPUID		0x12
#define SGX_CPUID_EPC		2	/* the first EPC section's subleaf */
#define SGX_CPUID_EPC_SECTION	1	/* subleaf EAX[3:0]: a valid section */
/* the bits of the page-fault error codes the scenarios expect */
#define PF_PRESENT		0x1
#define PF_WRITE		0x2
#define PF_USER			0x4
#define PF_SGX			0x8000	/* refused by the EPCM, not the page tables */

/*
 * Every entry goes through this one function, never inlined, called from the
 * scenario itself: an enclave resumed after an AEX returns with the stack pointer and
 * frame pointer of the EENTER it resumes (its entry saved them), so the vDSO call of
 * the ERESUME must sit where the EENTER's sat, as the kselftest's ENCL_CALL() and its
 * direct ERESUME calls, made in one test function, sit. A call that ends in an AEX
 * returns with R12-R15 zero (the AEX's synthetic state): a direct call says so to
 * the compiler, which then keeps them for the scenario.
 */
static __attribute__((noinline)) int encl_enter(struct test *t, void *op, unsigned int function,
						bool clobbered)
{
	int ret;

	if (!clobbered)
		return sgx_enter_enclave_preserving((unsigned long)op, 0, 0, function, 0, 0, &t->run);
	ret = vdso_sgx_enter_enclave((unsigned long)op, 0, 0, function, 0, 0, &t->run);
	asm volatile("" : : : "r12", "r13", "r14", "r15");
	return ret;
}

static inline __attribute__((always_inline)) int encl_call(struct test *t, void *op,
							   bool clobbered)
{
	return encl_enter(t, op, EENTER, clobbered);
}

/* ERESUME the TCS of run.tcs after an AEX; op is what the interrupted call got */
static inline __attribute__((always_inline)) int encl_resume(struct test *t, void *op)
{
	return encl_enter(t, op, ERESUME, true);
}

static void clear_exception(struct test *t)
{
	t->run.exception_vector = 0;
	t->run.exception_error_code = 0;
	t->run.exception_addr = 0;
}

static bool sgx2_supported(void)
{
	unsigned int eax, ebx, ecx, edx;

	return __get_cpuid_count(SGX_CPUID, 0, &eax, &ebx, &ecx, &edx) && (eax & 0x2);
}

/* main.c get_total_epc_mem(): every EPC section CPUID leaf 0x12 enumerates */
static size_t total_epc_size(void)
{
	unsigned int eax, ebx, ecx, edx, subleaf;
	size_t total = 0;

	for (subleaf = SGX_CPUID_EPC;; subleaf++) {
		if (!__get_cpuid_count(SGX_CPUID, subleaf, &eax, &ebx, &ecx, &edx) ||
		    (eax & 0xf) != SGX_CPUID_EPC_SECTION)
			return total;
		total += (ecx & 0xfffff000) + ((size_t)(edx & 0xfffff) << 32);
	}
}

static size_t oversubscribed_heap(const struct test *t)
{
	return t->oversubscribed_heap ? t->oversubscribed_heap : total_epc_size();
}

/* An ioctl of the enclave: its result, and *err = its errno (0 on success). */
static int encl_ioctl(struct test *t, unsigned long cmd, void *arg, int *err)
{
	int ret = ioctl(t->encl.fd, cmd, arg);

	*err = ret == -1 ? errno : 0;
	return ret;
}

/*
 * The kselftest's check that the kernel knows an SGX2 ioctl: a zeroed argument must
 * fail, and ENOTTY (no such ioctl) or ENODEV (no SGX2) skip the scenario. True to
 * go on.
 */
static bool sgx2_ioctl_supported(struct test *t, unsigned long cmd, const char *name)
{
	struct sgx_enclave_modify_types zero = { 0 };	/* as large as RESTRICT's, zeroed */
	int err, ret = encl_ioctl(t, cmd, &zero, &err);

	if (!EXPECT_EQ(t, ret, -1))
		return false;
	if (err == ENOTTY)
		skip(t, "Kernel does not support SGX_IOC_ENCLAVE_%s ioctl()", name);
	else if (err == ENODEV)
		skip(t, "System does not support SGX2");
	return !t->skip[0];
}

/* PUT_TO_BUFFER MAGIC, GET_FROM_BUFFER: the body of the vdso scenarios */
static void put_get_buffer(struct test *t, bool clobbered)
{
	struct encl_op_buffer put_op = { { ENCL_OP_PUT_TO_BUFFER }, MAGIC };
	struct encl_op_buffer get_op = { { ENCL_OP_GET_FROM_BUFFER }, 0 };

	EXPECT_EQ(t, encl_call(t, &put_op, clobbered), 0);
	EXPECT_EEXIT(t);
	EXPECT_EQ(t, t->run.user_data, 0);
	EXPECT_EQ(t, encl_call(t, &get_op, clobbered), 0);
	EXPECT_EQ(t, get_op.value, MAGIC);
	EXPECT_EEXIT(t);
	EXPECT_EQ(t, t->run.user_data, 0);
}

/* PUT_TO_ADDRESS value at addr, GET_FROM_ADDRESS: both clean */
static void put_get_address(struct test *t, uint64_t addr, uint64_t value)
{
	struct encl_op_address put_op = { { ENCL_OP_PUT_TO_ADDRESS }, value, addr };
	struct encl_op_address get_op = { { ENCL_OP_GET_FROM_ADDRESS }, 0, addr };

	EXPECT_EQ(t, encl_call(t, &put_op, true), 0);
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, get_op.value, value);
	EXPECT_EEXIT_CLEAN(t);
}

/* EACCEPT of a page with flags, expected to succeed cleanly */
static void eaccept(struct test *t, uint64_t addr, uint64_t flags)
{
	struct encl_op_eaccept op = { { ENCL_OP_EACCEPT }, addr, flags, 0 };

	EXPECT_EQ(t, encl_call(t, &op, true), 0);
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, op.ret, 0);
}

/* the second page of encl_buffer: the page whose permissions the scenarios change */
static uint64_t data_start(const struct test *t)
{
	return t->encl.base + encl_data_offset(&t->encl) + PAGE_SIZE;
}

/* MODIFY_TYPES of length bytes at offset to type, expected to succeed */
static void modify_types(struct test *t, uint64_t offset, uint64_t length, uint64_t type)
{
	struct sgx_enclave_modify_types ioc = { .offset = offset, .length = length,
						.page_type = type };
	int err;

	EXPECT_EQ(t, encl_ioctl(t, SGX_IOC_ENCLAVE_MODIFY_TYPES, &ioc, &err), 0);
	EXPECT_EQ(t, err, 0);
	EXPECT_EQ(t, ioc.result, 0);
	EXPECT_EQ(t, ioc.count, length);
}

/* REMOVE_PAGES of length bytes at offset, expected to succeed */
static void remove_pages(struct test *t, uint64_t offset, uint64_t length)
{
	struct sgx_enclave_remove_pages ioc = { .offset = offset, .length = length };
	int err;

	EXPECT_EQ(t, encl_ioctl(t, SGX_IOC_ENCLAVE_REMOVE_PAGES, &ioc, &err), 0);
	EXPECT_EQ(t, err, 0);
	EXPECT_EQ(t, ioc.count, length);
}

/* A page mapping from the device right after the pages added at build time. */
static void *map_after_loaded(struct test *t, size_t length, int prot)
{
	void *addr = mmap((void *)(t->encl.base + encl_loaded_size(&t->encl)), length, prot,
			  MAP_SHARED | MAP_FIXED, t->encl.fd, 0);

	EXPECT_EQ(t, addr == MAP_FAILED, false);
	return addr;
}

static void unclobbered_vdso(struct test *t)
{
	if (setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		put_get_buffer(t, false);
}

/* A heap as large as the EPC: building the enclave makes the kernel reclaim pages. */
static void unclobbered_vdso_oversubscribed(struct test *t)
{
	size_t heap = oversubscribed_heap(t);

	ASSERT_EQ(t, heap == 0, false);
	if (setup_test_encl(t, heap))
		put_get_buffer(t, false);
}

/* ... then trim the whole heap, EACCEPT each page and remove them all. */
static void unclobbered_vdso_oversubscribed_remove(struct test *t)
{
	size_t heap_size = oversubscribed_heap(t);
	const struct encl_segment *heap;
	uint64_t addr, i;

	ASSERT_EQ(t, heap_size == 0, false);
	diag("Creating an enclave with %zu bytes heap may take a while ...", heap_size);
	if (!setup_test_encl(t, heap_size) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_MODIFY_TYPES, "MODIFY_TYPES"))
		return;
	heap = &t->encl.segments[t->encl.nr_segments - 1];
	put_get_buffer(t, false);

	modify_types(t, heap->offset, heap->size, SGX_PAGE_TYPE_TRIM);
	addr = t->encl.base + heap->offset;
	for (i = 0; i < heap->size; i += PAGE_SIZE) {
		struct encl_op_eaccept op = { { ENCL_OP_EACCEPT }, addr + i,
					      SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED, 0 };

		EXPECT_EQ(t, encl_call(t, &op, true), 0);
		EXPECT_EQ(t, t->run.exception_vector, 0);
		EXPECT_EQ(t, t->run.exception_error_code, 0);
		EXPECT_EQ(t, t->run.exception_addr, 0);
		ASSERT_EQ(t, op.ret, 0);
		ASSERT_EQ(t, t->run.function, EEXIT);
	}
	remove_pages(t, heap->offset, heap->size);
}

static void clobbered_vdso(struct test *t)
{
	if (setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		put_get_buffer(t, true);
}

/* main.c test_handler(): the vDSO calls it after the exit; it clears user_data */
static int user_handler(long rdi, long rsi, long rdx, long ursp, long r8, long r9,
			struct sgx_enclave_run *run)
{
	run->user_data = 0;
	return 0;
}

static void clobbered_vdso_and_user_function(struct test *t)
{
	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		return;
	t->run.user_handler = (uint64_t)user_handler;
	t->run.user_data = 0xdeadbeef;
	put_get_buffer(t, true);
}

/* Either static TCS can be entered. */
static void tcs_entry(struct test *t)
{
	struct encl_op_header op = { ENCL_OP_NOP };

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		return;
	EXPECT_EQ(t, encl_call(t, &op, true), 0);
	EXPECT_EEXIT_CLEAN(t);
	t->run.tcs = t->encl.base + PAGE_SIZE;
	EXPECT_EQ(t, encl_call(t, &op, true), 0);
	EXPECT_EEXIT_CLEAN(t);
}

/* A PTE made read-only faults an enclave write (no SGX bit); made RW again, ERESUME. */
static void pte_permissions(struct test *t)
{
	struct encl_op_address put_op = { .header = { ENCL_OP_PUT_TO_ADDRESS } };
	struct encl_op_address get_op = { .header = { ENCL_OP_GET_FROM_ADDRESS } };
	uint64_t page;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		return;
	page = data_start(t);
	put_get_address(t, page, MAGIC);

	EXPECT_EQ(t, mprotect((void *)page, PAGE_SIZE, PROT_READ), 0);
	put_op.value = MAGIC2;
	put_op.addr = page;
	EXPECT_EQ(t, encl_call(t, &put_op, true), 0);
	EXPECT_EQ(t, t->run.exception_vector, 14);
	EXPECT_EQ(t, t->run.exception_error_code, PF_PRESENT | PF_WRITE | PF_USER);
	EXPECT_EQ(t, t->run.exception_addr, page);
	clear_exception(t);

	EXPECT_EQ(t, mprotect((void *)page, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	EXPECT_EQ(t, encl_resume(t, &put_op), 0);
	EXPECT_EEXIT_CLEAN(t);

	get_op.addr = page;
	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, get_op.value, MAGIC2);
	EXPECT_EEXIT_CLEAN(t);
}

/* A TCS's EPCM permissions cannot be restricted. */
static void tcs_permissions(struct test *t)
{
	struct sgx_enclave_restrict_permissions ioc = { .length = PAGE_SIZE,
							.permissions = SGX_SECINFO_R };
	int err;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, "RESTRICT_PERMISSIONS"))
		return;
	ioc.offset = t->encl.segments[0].offset;
	EXPECT_EQ(t, encl_ioctl(t, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, &ioc, &err), -1);
	EXPECT_EQ(t, err, EINVAL);
	EXPECT_EQ(t, ioc.result, 0);
	EXPECT_EQ(t, ioc.count, 0);
}

/*
 * EPCM permissions restricted to read (EMODPR, EACCEPT) fault a write with the SGX
 * bit while the PTE stays RW; EMODPE from the other TCS makes the page writable and
 * the write is resumed.
 */
static void epcm_permissions(struct test *t)
{
	struct sgx_enclave_restrict_permissions ioc = { .length = PAGE_SIZE,
							.permissions = SGX_SECINFO_R };
	struct encl_op_address put_op = { .header = { ENCL_OP_PUT_TO_ADDRESS } };
	struct encl_op_address get_op = { .header = { ENCL_OP_GET_FROM_ADDRESS } };
	struct encl_op_emodpe emodpe_op = { .header = { ENCL_OP_EMODPE } };
	uint64_t page;
	int err;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, "RESTRICT_PERMISSIONS"))
		return;
	page = data_start(t);
	put_get_address(t, page, MAGIC);

	ioc.offset = encl_data_offset(&t->encl) + PAGE_SIZE;
	EXPECT_EQ(t, encl_ioctl(t, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, &ioc, &err), 0);
	EXPECT_EQ(t, err, 0);
	EXPECT_EQ(t, ioc.result, 0);
	EXPECT_EQ(t, ioc.count, PAGE_SIZE);
	eaccept(t, page, SGX_SECINFO_R | SGX_SECINFO_REG | SGX_SECINFO_PR);

	put_op.value = MAGIC2;
	put_op.addr = page;
	EXPECT_EQ(t, encl_call(t, &put_op, true), 0);
	EXPECT_EQ(t, t->run.function, ERESUME);
	EXPECT_EQ(t, t->run.exception_vector, 14);
	EXPECT_EQ(t, t->run.exception_error_code, PF_SGX | PF_PRESENT | PF_WRITE | PF_USER);
	EXPECT_EQ(t, t->run.exception_addr, page);
	clear_exception(t);

	t->run.tcs = t->encl.base + PAGE_SIZE;
	emodpe_op.epc_addr = page;
	emodpe_op.flags = SGX_SECINFO_R | SGX_SECINFO_W;
	EXPECT_EQ(t, encl_call(t, &emodpe_op, true), 0);
	EXPECT_EEXIT_CLEAN(t);

	t->run.tcs = t->encl.base;
	EXPECT_EQ(t, encl_resume(t, &put_op), 0);
	EXPECT_EEXIT_CLEAN(t);

	get_op.addr = page;
	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, get_op.value, MAGIC2);
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, t->run.user_data, 0);
}

/*
 * The two augment scenarios' start: an SGX2 CPU, the enclave with the default heap,
 * and one page past its loaded pages mapped RWX, where no EPC page is yet (the driver
 * EAUGs it on first access). NULL if the scenario is skipped or its enclave fails to
 * load; a failed check before that is counted and the scenario goes on, as there.
 */
static void *map_augment_page(struct test *t, size_t *loaded)
{
	if (!sgx2_supported()) {
		skip(t, "SGX2 not supported");
		return NULL;
	}
	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT))
		return NULL;
	*loaded = encl_loaded_size(&t->encl);
	EXPECT_EQ(t, *loaded + PAGE_SIZE < t->encl.size, true);
	void *addr = map_after_loaded(t, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
	clear_exception(t);
	return addr;
}

/*
 * A write to a page mapped where no enclave page is: the kernel EAUGs one, still
 * PENDING, so the retried write faults with the SGX bit; EACCEPT from the other TCS,
 * then ERESUME completes the write.
 */
static void augment(struct test *t)
{
	struct encl_op_address put_op = { .header = { ENCL_OP_PUT_TO_ADDRESS } };
	struct encl_op_address get_op = { .header = { ENCL_OP_GET_FROM_ADDRESS } };
	size_t loaded;
	void *addr;

	addr = map_augment_page(t, &loaded);
	if (!addr)
		return;

	put_op.value = MAGIC;
	put_op.addr = (uint64_t)addr;
	EXPECT_EQ(t, encl_call(t, &put_op, true), 0);
	EXPECT_EQ(t, t->run.function, ERESUME);
	EXPECT_EQ(t, t->run.exception_vector, 14);
	EXPECT_EQ(t, t->run.exception_addr, (uint64_t)addr);
	if (t->run.exception_error_code == (PF_WRITE | PF_USER)) {
		munmap(addr, PAGE_SIZE);
		skip(t, "Kernel does not support adding pages to initialized enclave");
		return;
	}
	EXPECT_EQ(t, t->run.exception_error_code, PF_SGX | PF_PRESENT | PF_WRITE | PF_USER);
	clear_exception(t);

	t->run.tcs = t->encl.base + PAGE_SIZE;
	eaccept(t, t->encl.base + loaded,
		SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING);

	t->run.tcs = t->encl.base;
	EXPECT_EQ(t, encl_resume(t, &put_op), 0);
	EXPECT_EEXIT_CLEAN(t);

	get_op.addr = (uint64_t)addr;
	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, get_op.value, MAGIC);
	EXPECT_EEXIT_CLEAN(t);
	munmap(addr, PAGE_SIZE);
}

/* EACCEPT first: its own access EAUGs the page, and the page is then usable. */
static void augment_via_eaccept(struct test *t)
{
	struct encl_op_eaccept eaccept_op = { .header = { ENCL_OP_EACCEPT } };
	size_t loaded;
	void *addr;

	addr = map_augment_page(t, &loaded);
	if (!addr)
		return;

	eaccept_op.epc_addr = t->encl.base + loaded;
	eaccept_op.flags = SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING;
	EXPECT_EQ(t, encl_call(t, &eaccept_op, true), 0);
	if (t->run.exception_vector == 14 && t->run.exception_error_code == PF_USER &&
	    t->run.exception_addr == t->encl.base + loaded) {
		munmap(addr, PAGE_SIZE);
		skip(t, "Kernel does not support adding pages to initialized enclave");
		return;
	}
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, eaccept_op.ret, 0);

	put_get_address(t, (uint64_t)addr, MAGIC);
	munmap(addr, PAGE_SIZE);
}

/*
 * A TCS made at run time: three pages EAUGed and accepted (its stack, the TCS, its
 * SSA), the TCS written by the enclave, MODIFY_TYPES to TCS, EACCEPT, a call through
 * it. Then the three pages are trimmed, accepted and removed, and a regular page
 * EAUGed where the TCS was is used.
 */
static void tcs_create(struct test *t)
{
	const uint64_t pending = SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG |
				 SGX_SECINFO_PENDING;
	struct encl_op_init_tcs_page init_op = { .header = { ENCL_OP_INIT_TCS_PAGE } };
	struct encl_op_eaccept first_op = { .header = { ENCL_OP_EACCEPT } };
	struct encl_op_buffer put_op = { { ENCL_OP_PUT_TO_BUFFER }, MAGIC };
	struct encl_op_buffer get_op = { { ENCL_OP_GET_FROM_BUFFER }, 0 };
	uint64_t stack_end, tcs, ssa, entry;
	size_t loaded;
	void *addr;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_MODIFY_TYPES, "MODIFY_TYPES"))
		return;
	loaded = encl_loaded_size(&t->encl);
	EXPECT_EQ(t, loaded + 3 * PAGE_SIZE < t->encl.size, true);
	addr = map_after_loaded(t, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE);
	clear_exception(t);
	stack_end = t->encl.base + loaded;
	tcs = stack_end + PAGE_SIZE;
	ssa = stack_end + 2 * PAGE_SIZE;

	first_op.epc_addr = stack_end;
	first_op.flags = pending;
	EXPECT_EQ(t, encl_call(t, &first_op, true), 0);
	if (t->run.exception_vector == 14 && t->run.exception_error_code == PF_USER &&
	    t->run.exception_addr == stack_end) {
		munmap(addr, 3 * PAGE_SIZE);
		skip(t, "Kernel does not support adding pages to initialized enclave");
		return;
	}
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, first_op.ret, 0);
	eaccept(t, ssa, pending);
	eaccept(t, tcs, pending);

	entry = encl_symbol(&t->encl, "encl_dyn_entry");
	EXPECT_EQ(t, entry == 0, false);
	init_op.tcs_page = tcs;
	init_op.ssa = loaded + 2 * PAGE_SIZE;
	init_op.entry = entry;
	EXPECT_EQ(t, encl_call(t, &init_op, true), 0);
	EXPECT_EEXIT_CLEAN(t);

	modify_types(t, loaded + PAGE_SIZE, PAGE_SIZE, SGX_PAGE_TYPE_TCS);
	eaccept(t, tcs, SGX_SECINFO_TCS | SGX_SECINFO_MODIFIED);

	t->run.tcs = tcs;
	EXPECT_EQ(t, encl_call(t, &put_op, true), 0);
	EXPECT_EEXIT_CLEAN(t);
	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, get_op.value, MAGIC);
	EXPECT_EEXIT_CLEAN(t);

	modify_types(t, loaded, 3 * PAGE_SIZE, SGX_PAGE_TYPE_TRIM);
	t->run.tcs = t->encl.base;
	eaccept(t, stack_end, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED);
	eaccept(t, tcs, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED);
	eaccept(t, ssa, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED);
	remove_pages(t, loaded, 3 * PAGE_SIZE);

	eaccept(t, tcs, pending);
	put_get_address(t, tcs, MAGIC);
	munmap(addr, 3 * PAGE_SIZE);
}

/* The start of the remove_added_page_* scenarios: MAGIC through the data page, then
 * the page trimmed. False if the scenario ends here. */
static bool trim_used_data_page(struct test *t)
{
	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_MODIFY_TYPES, "MODIFY_TYPES"))
		return false;
	put_get_address(t, data_start(t), MAGIC);
	modify_types(t, encl_data_offset(&t->encl) + PAGE_SIZE, PAGE_SIZE, SGX_PAGE_TYPE_TRIM);
	return true;
}

/* A trimmed page the enclave did not accept cannot be removed. */
static void remove_added_page_no_eaccept(struct test *t)
{
	struct sgx_enclave_remove_pages ioc = { .length = PAGE_SIZE };
	int err;

	if (!trim_used_data_page(t))
		return;
	ioc.offset = encl_data_offset(&t->encl) + PAGE_SIZE;
	EXPECT_EQ(t, encl_ioctl(t, SGX_IOC_ENCLAVE_REMOVE_PAGES, &ioc, &err), -1);
	EXPECT_EQ(t, err, EPERM);
	EXPECT_EQ(t, ioc.count, 0);
}

/* A read of the trimmed page: #PF with the SGX bit */
static void expect_trimmed_page_faults(struct test *t)
{
	struct encl_op_address get_op = { { ENCL_OP_GET_FROM_ADDRESS }, 0, data_start(t) };

	EXPECT_EQ(t, encl_call(t, &get_op, true), 0);
	EXPECT_EQ(t, t->run.function, ERESUME);
	EXPECT_EQ(t, t->run.exception_vector, 14);
	EXPECT_EQ(t, t->run.exception_error_code, PF_SGX | PF_PRESENT | PF_USER);
	EXPECT_EQ(t, t->run.exception_addr, data_start(t));
}

static void remove_added_page_invalid_access(struct test *t)
{
	if (trim_used_data_page(t))
		expect_trimmed_page_faults(t);
}

static void remove_added_page_invalid_access_after_eaccept(struct test *t)
{
	if (!trim_used_data_page(t))
		return;
	eaccept(t, data_start(t), SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED);
	expect_trimmed_page_faults(t);
}

/* A page never touched is trimmed, accepted (EACCEPT faults its PTE in) and removed. */
static void remove_untouched_page(struct test *t)
{
	uint64_t offset;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) ||
	    !sgx2_ioctl_supported(t, SGX_IOC_ENCLAVE_MODIFY_TYPES, "MODIFY_TYPES"))
		return;
	offset = encl_data_offset(&t->encl) + PAGE_SIZE;
	modify_types(t, offset, PAGE_SIZE, SGX_PAGE_TYPE_TRIM);
	eaccept(t, data_start(t), SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED);
	remove_pages(t, offset, PAGE_SIZE);
}

/* TARGETINFO naming this enclave: its MRENCLAVE (the SIGSTRUCT's), ATTRIBUTES, XFRM */
static void self_targetinfo(const struct test *t, uint8_t *targetinfo)
{
	const uint64_t attributes[2] = { SGX_ATTR_INIT | SGX_ATTR_MODE64BIT, 3 };

	memset(targetinfo, 0, SGX_TARGETINFO_SIZE);
	memcpy(targetinfo + TARGETINFO_MEASUREMENT, t->encl.sigstruct + SIGSTRUCT_MRENCLAVE, 32);
	memcpy(targetinfo + TARGETINFO_ATTRIBUTES, attributes, sizeof(attributes));
}

/* The enclave's report for itself, carrying 64 bytes of ours; false if it failed. */
static bool self_report(struct test *t, struct encl_op_ereport *op)
{
	unsigned int i;

	op->header.type = ENCL_OP_EREPORT;
	self_targetinfo(t, op->targetinfo);
	for (i = 0; i < SGX_REPORTDATA_SIZE; i++)
		op->reportdata[i] = (uint8_t)(i * 7 + 1);
	return EXPECT_EQ(t, encl_call(t, op, true), 0) && EXPECT_EEXIT_CLEAN(t);
}

static uint64_t field(const uint8_t *bytes, size_t offset, size_t size)
{
	uint64_t value = 0;

	memcpy(&value, bytes + offset, size);
	return value;
}

/*
 * EREPORT: the report names this enclave (the SIGSTRUCT's MRENCLAVE, ISVPRODID,
 * ISVSVN; ATTRIBUTES INIT|MODE64BIT, XFRM 3) and carries our REPORTDATA. Its
 * MRSIGNER and MAC are printed for the caller to check.
 */
static void ereport(struct test *t)
{
	struct encl_op_ereport op = { 0 };
	const uint8_t *report = op.report;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) || !self_report(t, &op))
		return;
	EXPECT_EQ(t, memcmp(report + REPORT_MRENCLAVE, t->encl.sigstruct + SIGSTRUCT_MRENCLAVE, 32), 0);
	EXPECT_EQ(t, field(report, REPORT_ATTRIBUTES, 8), SGX_ATTR_INIT | SGX_ATTR_MODE64BIT);
	EXPECT_EQ(t, field(report, REPORT_ATTRIBUTES + 8, 8), 3);
	EXPECT_EQ(t, field(report, REPORT_MISCSELECT, 4), 0);
	EXPECT_EQ(t, field(report, REPORT_ISVPRODID, 2),
		  field(t->encl.sigstruct, SIGSTRUCT_ISVPRODID, 2));
	EXPECT_EQ(t, field(report, REPORT_ISVSVN, 2), field(t->encl.sigstruct, SIGSTRUCT_ISVSVN, 2));
	EXPECT_EQ(t, memcmp(report + REPORT_REPORTDATA, op.reportdata, SGX_REPORTDATA_SIZE), 0);
	diag_hex("mrsigner", report + REPORT_MRSIGNER, 32);
	diag_hex("report", report, SGX_REPORT_SIZE);
}

/* EGETKEY of the key a KEYREQUEST names; false if it failed */
static bool get_key(struct test *t, uint16_t keyname, uint16_t keypolicy, const uint8_t *keyid,
		    uint8_t *key)
{
	struct encl_op_egetkey op = { .header = { ENCL_OP_EGETKEY } };

	memcpy(op.keyrequest + KEYREQUEST_KEYNAME, &keyname, sizeof(keyname));
	memcpy(op.keyrequest + KEYREQUEST_KEYPOLICY, &keypolicy, sizeof(keypolicy));
	memcpy(op.keyrequest + KEYREQUEST_KEYID, keyid, 32);
	if (!EXPECT_EQ(t, encl_call(t, &op, true), 0) || !EXPECT_EEXIT_CLEAN(t) ||
	    !EXPECT_EQ(t, op.ret, 0))
		return false;
	memcpy(key, op.key, SGX_KEY_SIZE);
	return true;
}

/*
 * EGETKEY: the report key of the report's KEYID, twice the same, printed with the
 * report for the caller to check the report's MAC; the MRENCLAVE seal key differs.
 */
static void egetkey(struct test *t)
{
	struct encl_op_ereport op = { 0 };
	uint8_t report_key[SGX_KEY_SIZE], again[SGX_KEY_SIZE], seal_key[SGX_KEY_SIZE];
	const uint8_t *keyid = op.report + REPORT_KEYID;

	if (!setup_test_encl(t, ENCL_HEAP_SIZE_DEFAULT) || !self_report(t, &op) ||
	    !get_key(t, SGX_KEYNAME_REPORT, 0, keyid, report_key) ||
	    !get_key(t, SGX_KEYNAME_REPORT, 0, keyid, again) ||
	    !get_key(t, SGX_KEYNAME_SEAL, SGX_KEYPOLICY_MRENCLAVE, keyid, seal_key))
		return;
	EXPECT_EQ(t, memcmp(report_key, again, SGX_KEY_SIZE), 0);
	EXPECT_EQ(t, memcmp(report_key, seal_key, SGX_KEY_SIZE) == 0, false);
	diag_hex("report", op.report, SGX_REPORT_SIZE);
	diag_hex("report_key", report_key, SGX_KEY_SIZE);
}

const struct scenario scenarios[] = {
	{ "unclobbered_vdso", unclobbered_vdso, true },
	{ "unclobbered_vdso_oversubscribed", unclobbered_vdso_oversubscribed, true },
	{ "unclobbered_vdso_oversubscribed_remove", unclobbered_vdso_oversubscribed_remove, true },
	{ "clobbered_vdso", clobbered_vdso, true },
	{ "clobbered_vdso_and_user_function", clobbered_vdso_and_user_function, true },
	{ "tcs_entry", tcs_entry, true },
	{ "pte_permissions", pte_permissions, true },
	{ "tcs_permissions", tcs_permissions, true },
	{ "epcm_permissions", epcm_permissions, true },
	{ "augment", augment, true },
	{ "augment_via_eaccept", augment_via_eaccept, true },
	{ "tcs_create", tcs_create, true },
	{ "remove_added_page_no_eaccept", remove_added_page_no_eaccept, true },
	{ "remove_added_page_invalid_access", remove_added_page_invalid_access, true },
	{ "remove_added_page_invalid_access_after_eaccept",
	  remove_added_page_invalid_access_after_eaccept, true },
	{ "remove_untouched_page", remove_untouched_page, true },
	{ "ereport", ereport, false },
	{ "egetkey", egetkey, false },
};

const unsigned int nr_scenarios = sizeof(scenarios) / sizeof(scenarios[0]);
