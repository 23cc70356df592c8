"""The emulated SGX processor, as the Intel SDM Vol. 3D (ch. 34-38) specifies it.

    defs       arch/x86/include/asm/sgx.h: SECINFO, page types, attributes, ENCLU leaf
               numbers, error codes, SECS/TCS/SECINFO/SIGSTRUCT sizes and layouts
    cpu        CPUID leaf 0x12, the EPC and its EPCM, the ENCLS leaves the driver runs
               (arch/x86/kernel/cpu/sgx/encls.h wraps them in Linux)
    paging     the ENCLS leaves that page the EPC: EBLOCK, ETRACK (tracking epochs),
               EWB, ELDB/ELDU (the VA slot's version, the PCMD's MAC)
    enclu      enclave mode: the ENCLU leaves (EENTER ... EGETKEY, EDECCSSA), the AEX,
               enclave-mode access checks, the instructions enclave mode refuses
    measure    MRENCLAVE: the ECREATE/EADD/EEXTEND records (SDM; the kselftest's
               tools/testing/selftests/sgx/sigstruct.c mirrors it in user space)
    sigstruct  SIGSTRUCT layout, RSA-3072 signing, EINIT's verification, MRSIGNER

It imports nothing above it: the driver (vmsim/drivers/sgx/) and user space
(vmsim/enclave/) call into it.
"""
