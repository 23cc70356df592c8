"""The SGX driver's user-space ABI: arch/x86/include/uapi/asm/sgx.h: the ioctl numbers,
the ADD_PAGES flags and the ioctl argument structs (all __u64 fields, no padding,
little-endian).

The architectural constants those structs carry (SECINFO flags, page types, SECS
attributes, the SECS/SECINFO/SIGSTRUCT sizes) are vmsim/arch/x86/sgx/defs.py; struct
sgx_enclave_run, the vDSO's argument, is with the vDSO (vmsim/arch/x86/vdso.py).
"""

import struct

SGX_MAGIC = 0xA4
SGX_IOC_ENCLAVE_CREATE = 0x4008A400
SGX_IOC_ENCLAVE_ADD_PAGES = 0xC030A401
SGX_IOC_ENCLAVE_INIT = 0x4008A402
SGX_IOC_ENCLAVE_PROVISION = 0x4008A403
SGX_IOC_VEPC_REMOVE_ALL = 0x0000A404
SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS = 0xC028A405
SGX_IOC_ENCLAVE_MODIFY_TYPES = 0xC028A406
SGX_IOC_ENCLAVE_REMOVE_PAGES = 0xC018A407

#: enum sgx_page_flags: SGX_IOC_ENCLAVE_ADD_PAGES flags
SGX_PAGE_MEASURE = 0x01

CREATE = struct.Struct("<Q")                 # src
ADD_PAGES = struct.Struct("<6Q")             # src, offset, length, secinfo, flags, count
INIT = struct.Struct("<Q")                   # sigstruct
PROVISION = struct.Struct("<Q")              # fd
RESTRICT_PERMISSIONS = struct.Struct("<5Q")  # offset, length, permissions, result, count
MODIFY_TYPES = struct.Struct("<5Q")          # offset, length, page_type, result, count
REMOVE_PAGES = struct.Struct("<3Q")          # offset, length, count
