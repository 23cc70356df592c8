"""SGX architectural definitions: arch/x86/include/asm/sgx.h and the Intel SDM Vol. 3D
(ch. 34-38): SECINFO flags and page types, SECS attributes and MISCSELECT, the ENCLU
leaf numbers, the SGX error codes, and the sizes and layouts of SECS, TCS, SECINFO and
SIGSTRUCT (packed little-endian, as in the kernel).

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

# --- ENCLU leaves (RAX) ---
EREPORT, EGETKEY, EENTER, ERESUME, EEXIT, EACCEPT, EMODPE, EACCEPTCOPY = range(8)

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
