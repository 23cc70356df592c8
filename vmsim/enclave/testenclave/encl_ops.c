// SPDX-License-Identifier: GPL-2.0
/*
 * vmsim test enclave: the operations and their dispatch (after the Linux SGX
 * kselftest's tools/testing/selftests/sgx/test_encl.c: the same operations and
 * behaviour, written here for this project; the ABI is encl_abi.h).
 *
 * Built freestanding as a static PIE and never relocated (encl_entry.S): code
 * reaches data RIP-relative, and the one table of code addresses, encl_ops[],
 * holds link-time addresses, which are offsets from the enclave base.
 *
 * An operation is read from, and its results written to, the host's memory where
 * RDI points, byte by byte as the kselftest's enclave copies: an access that faults
 * (an AEX) resumes where it stopped after ERESUME, re-reading the host's memory.
 */
#include <stddef.h>
#include <stdint.h>

#include "encl_abi.h"

typedef void (*encl_op_fn)(void *op);

/*
 * Two pages of data, the first thing of the data segment (encl.lds): the first 8
 * bytes are the buffer of ENCL_OP_PUT/GET_FROM_BUFFER; the second page is the one
 * the host changes the permissions of. The 1 keeps it out of .bss.
 */
uint8_t encl_buffer[2 * 4096] __attribute__((section(".data.encl_buffer"))) = { 1 };

/* the first byte of the enclave (encl.lds), to turn an offset into an address */
extern const uint8_t __encl_base[] __attribute__((visibility("hidden")));

/* what gcc may call for a copy or a fill, freestanding */
void *memcpy(void *dest, const void *src, size_t n);
void *memset(void *dest, int c, size_t n);

void *memcpy(void *dest, const void *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile uint8_t *)dest)[i] = ((const volatile uint8_t *)src)[i];
	return dest;
}

void *memset(void *dest, int c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile uint8_t *)dest)[i] = (uint8_t)c;
	return dest;
}

static void encl_put_to_buffer(void *_op)
{
	struct encl_op_buffer *op = _op;

	memcpy(encl_buffer, &op->value, sizeof(op->value));
}

static void encl_get_from_buffer(void *_op)
{
	struct encl_op_buffer *op = _op;

	memcpy(&op->value, encl_buffer, sizeof(op->value));
}

static void encl_put_to_address(void *_op)
{
	struct encl_op_address *op = _op;

	memcpy((void *)op->addr, &op->value, sizeof(op->value));
}

static void encl_get_from_address(void *_op)
{
	struct encl_op_address *op = _op;

	memcpy(&op->value, (void *)op->addr, sizeof(op->value));
}

static void encl_nop(void *op)
{
}

/* ENCLU[EACCEPT]: RBX = the SECINFO, RCX = the page; RAX = 0 or an SGX error code */
static void encl_eaccept(void *_op)
{
	struct encl_op_eaccept *op = _op;
	struct sgx_secinfo secinfo = { .flags = op->flags };
	uint64_t rax;

	asm volatile("enclu"
		     : "=a" (rax)
		     : "a" (EACCEPT), "b" (&secinfo), "c" (op->epc_addr)
		     : "memory");
	op->ret = rax;
}

/* ENCLU[EMODPE]: RBX = the SECINFO, RCX = the page; no result but a fault */
static void encl_emodpe(void *_op)
{
	struct encl_op_emodpe *op = _op;
	struct sgx_secinfo secinfo = { .flags = op->flags };

	asm volatile("enclu"
		     :
		     : "a" (EMODPE), "b" (&secinfo), "c" (op->epc_addr)
		     : "memory");
}

/* A TCS, written field by field into a page the enclave EACCEPTed (PENDING, RW). */
static void encl_init_tcs_page(void *_op)
{
	struct encl_op_init_tcs_page *op = _op;
	struct sgx_tcs *tcs = (struct sgx_tcs *)op->tcs_page;

	memset(tcs, 0, sizeof(*tcs));
	tcs->ossa = op->ssa;
	tcs->nssa = 1;
	tcs->oentry = op->entry;
	tcs->fslimit = 0xffffffff;
	tcs->gslimit = 0xffffffff;
}

/*
 * ENCLU[EREPORT]: RBX = TARGETINFO, RCX = REPORTDATA, RDX = the REPORT, all three
 * inside the enclave and aligned; so they are copied in from the host's operation
 * to this thread's stack, and the report back out.
 */
static void encl_ereport(void *_op)
{
	struct encl_op_ereport *op = _op;
	uint8_t targetinfo[SGX_TARGETINFO_SIZE] __attribute__((aligned(512)));
	uint8_t reportdata[SGX_REPORTDATA_SIZE] __attribute__((aligned(128)));
	uint8_t report[SGX_REPORT_SIZE] __attribute__((aligned(512)));

	memcpy(targetinfo, op->targetinfo, sizeof(targetinfo));
	memcpy(reportdata, op->reportdata, sizeof(reportdata));
	asm volatile("enclu"
		     :
		     : "a" (EREPORT), "b" (targetinfo), "c" (reportdata), "d" (report)
		     : "memory");
	memcpy(op->report, report, sizeof(report));
}

/* ENCLU[EGETKEY]: RBX = the KEYREQUEST, RCX = the key, both inside the enclave */
static void encl_egetkey(void *_op)
{
	struct encl_op_egetkey *op = _op;
	uint8_t keyrequest[SGX_KEYREQUEST_SIZE] __attribute__((aligned(512)));
	uint8_t key[SGX_KEY_SIZE] __attribute__((aligned(16)));
	uint64_t rax;

	memcpy(keyrequest, op->keyrequest, sizeof(keyrequest));
	asm volatile("enclu"
		     : "=a" (rax)
		     : "a" (EGETKEY), "b" (keyrequest), "c" (key)
		     : "memory");
	if (rax == 0)
		memcpy(op->key, key, sizeof(key));
	memset(key, 0, sizeof(key));
	op->ret = rax;
}

/* by enum encl_op_type: link-time addresses (see the top of this file) */
static const encl_op_fn encl_ops[ENCL_OP_MAX] = {
	[ENCL_OP_PUT_TO_BUFFER]		= encl_put_to_buffer,
	[ENCL_OP_GET_FROM_BUFFER]	= encl_get_from_buffer,
	[ENCL_OP_PUT_TO_ADDRESS]	= encl_put_to_address,
	[ENCL_OP_GET_FROM_ADDRESS]	= encl_get_from_address,
	[ENCL_OP_NOP]			= encl_nop,
	[ENCL_OP_EACCEPT]		= encl_eaccept,
	[ENCL_OP_EMODPE]		= encl_emodpe,
	[ENCL_OP_INIT_TCS_PAGE]		= encl_init_tcs_page,
	[ENCL_OP_EREPORT]		= encl_ereport,
	[ENCL_OP_EGETKEY]		= encl_egetkey,
};

/* Called by encl_entry.S on this thread's stack with the host's RDI. */
void encl_dispatch(void *op);

void encl_dispatch(void *op)
{
	uint64_t type = ((struct encl_op_header *)op)->type;
	encl_op_fn fn;

	if (type >= ENCL_OP_MAX)
		return;
	fn = (encl_op_fn)((uintptr_t)__encl_base + (uintptr_t)encl_ops[type]);
	fn(op);
}
