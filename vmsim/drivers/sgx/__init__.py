"""The in-kernel Intel SGX driver (arch/x86/kernel/cpu/sgx/) and an emulated SGX CPU.

    uapi      asm/sgx.h: ioctl numbers, argument structs, SECINFO, SECS, TCS, SIGSTRUCT
    measure   MRENCLAVE (ECREATE/EADD/EEXTEND records)
    sigstruct SIGSTRUCT building, RSA-3072 e=3 signing and verification, MRSIGNER
"""
