/*
 * vmsim test enclave: the call ABI between a host and the enclave, shared by both.
 *
 * The host enters a TCS through __vdso_sgx_enter_enclave() with RDI pointing at an
 * operation in its own (untrusted) memory; the enclave reads the operation there,
 * performs it and writes its results back there, then EEXITs. The operations and
 * their layouts are those of the Linux SGX kselftest (tools/testing/selftests/sgx/
 * defines.h, enum encl_op_type and struct encl_op_*), numbered as there, so a host
 * written for one enclave drives the other; ENCL_OP_EREPORT and ENCL_OP_EGETKEY are
 * this project's, numbered after them.
 */
#ifndef ENCL_ABI_H
#define ENCL_ABI_H

#include <stdint.h>

#include "sgx_arch.h"

enum encl_op_type {
	ENCL_OP_PUT_TO_BUFFER,		/* value -> the first 8 bytes of encl_buffer */
	ENCL_OP_GET_FROM_BUFFER,	/* the first 8 bytes of encl_buffer -> value */
	ENCL_OP_PUT_TO_ADDRESS,		/* value -> 8 bytes at addr */
	ENCL_OP_GET_FROM_ADDRESS,	/* 8 bytes at addr -> value */
	ENCL_OP_NOP,
	ENCL_OP_EACCEPT,		/* ENCLU[EACCEPT] of epc_addr with flags -> ret */
	ENCL_OP_EMODPE,			/* ENCLU[EMODPE] of epc_addr with flags */
	ENCL_OP_INIT_TCS_PAGE,		/* write a TCS at tcs_page */
	ENCL_OP_EREPORT,		/* ENCLU[EREPORT] of targetinfo, reportdata -> report */
	ENCL_OP_EGETKEY,		/* ENCLU[EGETKEY] of keyrequest -> key, ret */
	ENCL_OP_MAX,
};

/* Every operation starts with its type; an unknown type is ignored (a plain EEXIT). */
struct encl_op_header {
	uint64_t type;
};

/* ENCL_OP_PUT_TO_BUFFER, ENCL_OP_GET_FROM_BUFFER */
struct encl_op_buffer {
	struct encl_op_header header;
	uint64_t value;
};

/* ENCL_OP_PUT_TO_ADDRESS, ENCL_OP_GET_FROM_ADDRESS: addr is any address the enclave
 * can reach (inside ELRANGE or not) */
struct encl_op_address {
	struct encl_op_header header;
	uint64_t value;
	uint64_t addr;
};

/* ENCL_OP_EACCEPT: ret is RAX after EACCEPT (0, or an SGX error code) */
struct encl_op_eaccept {
	struct encl_op_header header;
	uint64_t epc_addr;
	uint64_t flags;			/* SECINFO.FLAGS */
	uint64_t ret;
};

/* ENCL_OP_EMODPE */
struct encl_op_emodpe {
	struct encl_op_header header;
	uint64_t epc_addr;
	uint64_t flags;			/* SECINFO.FLAGS: the permissions to add */
};

/* ENCL_OP_INIT_TCS_PAGE: ssa and entry are offsets from the enclave base (OSSA,
 * OENTRY); the TCS gets one SSA frame and FS/GS limits of 4 GiB, the rest zero */
struct encl_op_init_tcs_page {
	struct encl_op_header header;
	uint64_t tcs_page;
	uint64_t ssa;
	uint64_t entry;
};

/* ENCL_OP_EREPORT: the report of this enclave for the target targetinfo names,
 * carrying reportdata */
struct encl_op_ereport {
	struct encl_op_header header;
	uint8_t targetinfo[SGX_TARGETINFO_SIZE];
	uint8_t reportdata[SGX_REPORTDATA_SIZE];
	uint8_t report[SGX_REPORT_SIZE];
};

/* ENCL_OP_EGETKEY: ret is RAX after EGETKEY (0, or an SGX error code; key is
 * written only on 0) */
struct encl_op_egetkey {
	struct encl_op_header header;
	uint8_t keyrequest[SGX_KEYREQUEST_SIZE];
	uint8_t key[SGX_KEY_SIZE];
	uint64_t ret;
};

#endif /* ENCL_ABI_H */
