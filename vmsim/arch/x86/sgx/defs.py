"""SGX architectural definitions: arch/x86/include/asm/sgx.h and the Intel SDM Vol. 3D
(ch. 34-38): SECINFO flags and page types, SECS attributes and MISCSELECT, TCS.FLAGS,
the ENCLU leaf numbers, the SGX error codes, and the sizes and layouts of SECS, TCS,
SECINFO, SIGSTRUCT, the SSA frame (GPRSGX, EXITINFO, EXINFO, the XSAVE header),
REPORT, TARGETINFO and KEYREQUEST (packed little-endian, as in the kernel).

The emulated CPU, the driver and the user-space tools all take them from here; the
driver's ioctl ABI (arch/x86/include/uapi/asm/sgx.h) is vmsim/drivers/sgx/uapi.py.
"""

import struct

# --- SECINFO: enum sgx_secinfo_flags, enum sgx_page_type ---
SGX_SECINFO_R = 0x01
SGX_SECINFO_W = 0x02
SGX_SECINFO_X = 0x04
SGX_SECINFO_PENDING = 0x08
SGX_SECINFO_MODIFIED = 0x10
SGX_SECINFO_PR = 0x20
SGX_SECINFO_PERMISSION_MASK = 0x07
SGX_SECINFO_PAGE_TYPE_SHIFT = 8
SGX_SECINFO_PAGE_TYPE_MASK = 0xFF00
#: the driver's reserved mask (ADD_PAGES): PENDING, MODIFIED and PR count as reserved
SGX_SECINFO_RESERVED_MASK = ~(SGX_SECINFO_PERMISSION_MASK | SGX_SECINFO_PAGE_TYPE_MASK) \
    & 0xFFFFFFFFFFFFFFFF
#: the architectural reserved bits of SECINFO.FLAGS (SDM Vol. 3D, SECINFO: bits 7:6 and
#: 63:16), which ENCLU[EACCEPT] refuses with #GP
SGX_SECINFO_FLAGS_RESERVED_MASK = ~(SGX_SECINFO_PERMISSION_MASK | SGX_SECINFO_PENDING |
                                    SGX_SECINFO_MODIFIED | SGX_SECINFO_PR |
                                    SGX_SECINFO_PAGE_TYPE_MASK) & 0xFFFFFFFFFFFFFFFF
SGX_PAGE_TYPE_SECS = 0
SGX_PAGE_TYPE_TCS = 1
SGX_PAGE_TYPE_REG = 2
SGX_PAGE_TYPE_VA = 3
SGX_PAGE_TYPE_TRIM = 4
SGX_SECINFO_SECS = SGX_PAGE_TYPE_SECS << 8
SGX_SECINFO_TCS = SGX_PAGE_TYPE_TCS << 8
SGX_SECINFO_REG = SGX_PAGE_TYPE_REG << 8
SGX_SECINFO_TRIM = SGX_PAGE_TYPE_TRIM << 8

# --- SECS.ATTRIBUTES and MISCSELECT ---
SGX_ATTR_INIT = 1 << 0
SGX_ATTR_DEBUG = 1 << 1
SGX_ATTR_MODE64BIT = 1 << 2
SGX_ATTR_PROVISIONKEY = 1 << 4
SGX_ATTR_EINITTOKENKEY = 1 << 5
SGX_ATTR_KSS = 1 << 7
SGX_ATTR_ASYNC_EXIT_NOTIFY = 1 << 10
SGX_ATTR_RESERVED_MASK = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 9) | \
    (((1 << 64) - 1) & ~((1 << 11) - 1))
SGX_ATTR_UNPRIV_MASK = SGX_ATTR_DEBUG | SGX_ATTR_MODE64BIT | SGX_ATTR_KSS | \
    SGX_ATTR_ASYNC_EXIT_NOTIFY
SGX_ATTR_PRIV_MASK = SGX_ATTR_PROVISIONKEY | SGX_ATTR_EINITTOKENKEY
SGX_MISC_EXINFO = 1 << 0
#: TCS.FLAGS: DBGOPTIN (debug opt-in: single steps and breakpoints inside a debug
#: enclave) and AEXNOTIFY (AEX-Notify for this thread, with ATTRIBUTES.AEXNOTIFY)
TCS_FLAGS_DBGOPTIN = 1 << 0
TCS_FLAGS_AEXNOTIFY = 1 << 1

# --- ENCLU leaves (RAX) ---
EREPORT, EGETKEY, EENTER, ERESUME, EEXIT, EACCEPT, EMODPE, EACCEPTCOPY = range(8)
#: SGX2 with AEX-Notify (CPUID(0x12,0).EAX bit 11): pop an SSA frame from inside
EDECCSSA = 9

# --- SGX error codes: enum sgx_return_code (RAX with ZF=1) ---
SGX_INVALID_SIG_STRUCT = 1
SGX_INVALID_ATTRIBUTE = 2
SGX_BLKSTATE = 3
SGX_INVALID_MEASUREMENT = 4
SGX_NOTBLOCKABLE = 5
SGX_PG_INVLD = 6
SGX_EPC_PAGE_CONFLICT = 7
SGX_INVALID_SIGNATURE = 8
SGX_MAC_COMPARE_FAIL = 9
SGX_PAGE_NOT_BLOCKED = 10
SGX_NOT_TRACKED = 11
SGX_VA_SLOT_OCCUPIED = 12
SGX_CHILD_PRESENT = 13
SGX_ENCLAVE_ACT = 14
SGX_ENTRYEPOCH_LOCKED = 15
SGX_INVALID_EINITTOKEN = 16
SGX_PREV_TRK_INCMPL = 17
SGX_PG_IS_SECS = 18
SGX_PAGE_ATTRIBUTES_MISMATCH = 19
SGX_PAGE_NOT_MODIFIABLE = 20
SGX_PAGE_NOT_DEBUGGABLE = 21
SGX_INVALID_CPUSVN = 32
SGX_INVALID_ISVSVN = 64
SGX_UNMASKED_EVENT = 128
SGX_INVALID_KEYNAME = 256

# --- structure sizes and layouts ---
SIGSTRUCT_SIZE = 1808
SECS_SIZE = 4096
SECINFO_SIZE = 64
#: struct sgx_secs up to config_svn: size, base, ssa_frame_size, miscselect, 24 reserved
#: bytes, attributes, xfrm, mrenclave, reserved, mrsigner, reserved, config_id,
#: isv_prod_id, isv_svn, config_svn (the rest of the 4096 bytes is reserved)
SECS_FORMAT = struct.Struct("<QQII24xQQ32s32s32s32s64sHHH")
#: struct sgx_tcs up to gslimit: state, flags, ossa, cssa, nssa, oentry, aep, ofsbase,
#: ogsbase, fslimit, gslimit (the rest of the 4096-byte page is reserved)
TCS_FORMAT = struct.Struct("<QQQIIQQQQII")
#: byte offsets in the TCS of the fields the CPU writes: STATE (0: available, 1: a
#: logical processor executes the enclave on it), CSSA, and AEP (set by EENTER/ERESUME)
TCS_STATE, TCS_CSSA, TCS_AEP = 0, 24, 40
TCS_ACTIVE = 1

# --- the State Save Area frame (SDM "State Save Area (SSA) Frame") ---
#: GPRSGX, the last 184 bytes of the frame: RAX RCX RDX RBX RSP RBP RSI RDI R8-R15,
#: RFLAGS, RIP, URSP and URBP (the outside stack, saved by EENTER), EXITINFO, 3 reserved
#: bytes, AEXNOTIFY, FSBASE, GSBASE
GPRSGX_FORMAT = struct.Struct("<16QQQQQI3xBQQ")
GPRSGX_REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10",
               "r11", "r12", "r13", "r14", "r15")
#: byte offsets in GPRSGX of URSP (URBP follows) and of AEXNOTIFY (bit 0: AEX-Notify on
#: for the thread interrupted into this frame, set by enclave software)
GPRSGX_URSP, GPRSGX_AEXNOTIFY = 144, 167
#: EXITINFO: VECTOR (bits 7:0), EXIT_TYPE (10:8: 3 a hardware exception, 6 a software
#: exception), VALID (bit 31)
EXITINFO_TYPE_SHIFT = 8
EXIT_TYPE_HARDWARE, EXIT_TYPE_SOFTWARE = 3, 6
EXITINFO_VALID = 1 << 31
#: the MISC region's EXINFO component, just below GPRSGX when MISCSELECT.EXINFO is set:
#: MADDR (the #PF linear address, 0 for a #GP), ERRCD (the error code), 4 reserved bytes
EXINFO_FORMAT = struct.Struct("<QI4x")
#: the XSAVE area at the start of the frame: the legacy FXSAVE region, then the XSAVE
#: header (XSTATE_BV at byte 512; bytes 520-535, XCOMP_BV and the next word, must be 0)
FXSAVE_SIZE = 512
#: MXCSR's offset in the FXSAVE image
FXSAVE_MXCSR = 24
XSAVE_HEADER = 512
XSAVE_HEADER_RESERVED = slice(520, 536)

# --- attestation and keys (SDM "REPORT", "TARGETINFO", "KEYREQUEST") ---
#: REPORT (432 bytes, 512-byte aligned): CPUSVN, MISCSELECT, 12 reserved bytes,
#: ISVEXTPRODID, ATTRIBUTES (flags, XFRM), MRENCLAVE, 32 reserved, MRSIGNER, 32 reserved,
#: CONFIGID, ISVPRODID, ISVSVN, CONFIGSVN, 42 reserved, ISVFAMILYID, REPORTDATA; then
#: KEYID and the MAC, which the CMAC does not cover
REPORT_BODY_FORMAT = struct.Struct("<16sI12x16sQQ32s32x32s32x64sHHH42x16s64s")
REPORT_SIZE = REPORT_BODY_FORMAT.size + 32 + 16
#: TARGETINFO (512 bytes, 512-byte aligned): MEASUREMENT, ATTRIBUTES (flags, XFRM), 2
#: bytes (CET attributes, reserved), CONFIGSVN, MISCSELECT, 8 reserved, CONFIGID, 384
#: reserved
TARGETINFO_FORMAT = struct.Struct("<32sQQ2xHI8x64s384x")
#: KEYREQUEST (512 bytes, 512-byte aligned): KEYNAME, KEYPOLICY, ISVSVN, 2 reserved,
#: CPUSVN, ATTRIBUTEMASK (flags, XFRM), KEYID, MISCMASK, CONFIGSVN, 434 reserved
KEYREQUEST_FORMAT = struct.Struct("<HHH2s16sQQ32sIH434s")
KEY_SIZE = 16
#: KEYREQUEST.KEYNAME
EINITTOKEN_KEY, PROVISION_KEY, PROVISION_SEAL_KEY, REPORT_KEY, SEAL_KEY = range(5)
#: KEYREQUEST.KEYPOLICY; the bits above ISVEXTPRODID are reserved, and those above
#: MRSIGNER need ATTRIBUTES.KSS
KEYPOLICY_MRENCLAVE = 1 << 0
KEYPOLICY_MRSIGNER = 1 << 1
KEYPOLICY_NOISVPRODID = 1 << 2
KEYPOLICY_CONFIGID = 1 << 3
KEYPOLICY_ISVFAMILYID = 1 << 4
KEYPOLICY_ISVEXTPRODID = 1 << 5
KEYPOLICY_KSS = 0x3C
KEYPOLICY_RESERVED = 0xFFC0
