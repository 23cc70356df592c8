/*
 * vmsim test enclave: the SGX architectural definitions the enclave and its host use
 * (Linux: arch/x86/include/asm/sgx.h, arch/x86/include/asm/enclu.h; the Intel SDM
 * Vol. 3D, "SGX Data Structures" and "SGX Instruction References"). The model's own
 * copy is vmsim/arch/x86/sgx/defs.py.
 */
#ifndef SGX_ARCH_H
#define SGX_ARCH_H

#include <stdint.h>

/* ENCLU leaves (EAX) */
#define EREPORT			0
#define EGETKEY			1
#define EENTER			2
#define ERESUME			3
#define EEXIT			4
#define EACCEPT			5
#define EMODPE			6

/* SECINFO.FLAGS: permissions, page state (EACCEPT only), page type in bits 15:8 */
#define SGX_SECINFO_R		0x01
#define SGX_SECINFO_W		0x02
#define SGX_SECINFO_PENDING	0x08
#define SGX_SECINFO_MODIFIED	0x10
#define SGX_SECINFO_PR		0x20
#define SGX_PAGE_TYPE_TCS	1
#define SGX_PAGE_TYPE_REG	2
#define SGX_PAGE_TYPE_TRIM	4
#define SGX_SECINFO_TCS		(SGX_PAGE_TYPE_TCS << 8)
#define SGX_SECINFO_REG		(SGX_PAGE_TYPE_REG << 8)
#define SGX_SECINFO_TRIM	(SGX_PAGE_TYPE_TRIM << 8)

/* SECS.ATTRIBUTES */
#define SGX_ATTR_INIT		0x01
#define SGX_ATTR_MODE64BIT	0x04

/* SECS: the fields a loader sets; the rest of the page is reserved (zero) */
struct sgx_secs {
	uint64_t size;			/* ELRANGE: a power of two */
	uint64_t base;			/* ELRANGE: aligned to its size */
	uint32_t ssa_frame_size;	/* in pages */
	uint32_t miscselect;
	uint8_t reserved1[24];
	uint64_t attributes;
	uint64_t xfrm;
	uint8_t reserved2[4032];
} __attribute__((aligned(4096)));

/* SECINFO: 64 bytes, 64-byte aligned wherever ENCLU reads it */
struct sgx_secinfo {
	uint64_t flags;
	uint8_t reserved[56];
} __attribute__((aligned(64)));

/* TCS: the fields software sets; the rest of the page is reserved (zero) */
struct sgx_tcs {
	uint64_t state;			/* set by the CPU */
	uint64_t flags;			/* bit 0: DBGOPTIN */
	uint64_t ossa;			/* the SSA frames, from the enclave base */
	uint32_t cssa;			/* set by the CPU */
	uint32_t nssa;
	uint64_t oentry;		/* the entry point, from the enclave base */
	uint64_t aep;			/* set by EENTER and ERESUME */
	uint64_t ofsbase;
	uint64_t ogsbase;
	uint32_t fslimit;
	uint32_t gslimit;
	uint8_t reserved[4024];
};

/* sizes and alignments of what EREPORT and EGETKEY read and write */
#define SGX_TARGETINFO_SIZE	512	/* 512-byte aligned */
#define SGX_REPORTDATA_SIZE	64	/* 128-byte aligned */
#define SGX_REPORT_SIZE		432	/* 512-byte aligned */
#define SGX_KEYREQUEST_SIZE	512	/* 512-byte aligned */
#define SGX_KEY_SIZE		16	/* 16-byte aligned */

/* TARGETINFO: byte offsets of the fields a report's target is named by */
#define TARGETINFO_MEASUREMENT	0	/* 32 bytes: the target's MRENCLAVE */
#define TARGETINFO_ATTRIBUTES	32	/* 16 bytes: its ATTRIBUTES and XFRM */

/* REPORT: byte offsets of its fields */
#define REPORT_MISCSELECT	16	/* 4 bytes */
#define REPORT_ATTRIBUTES	48	/* 16 bytes: ATTRIBUTES, XFRM */
#define REPORT_MRENCLAVE	64	/* 32 bytes */
#define REPORT_MRSIGNER		128	/* 32 bytes */
#define REPORT_ISVPRODID	256	/* 2 bytes */
#define REPORT_ISVSVN		258	/* 2 bytes */
#define REPORT_REPORTDATA	320	/* 64 bytes */
#define REPORT_KEYID		384	/* 32 bytes; then the MAC: AES-CMAC of bytes 0-383 */

/* KEYREQUEST: byte offsets of its fields, and the key names */
#define KEYREQUEST_KEYNAME	0	/* 2 bytes */
#define KEYREQUEST_KEYPOLICY	2	/* 2 bytes */
#define KEYREQUEST_KEYID	40	/* 32 bytes */
#define SGX_KEYNAME_REPORT	3
#define SGX_KEYNAME_SEAL	4
#define SGX_KEYPOLICY_MRENCLAVE	0x1

#endif /* SGX_ARCH_H */
