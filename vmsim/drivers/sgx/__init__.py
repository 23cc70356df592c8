"""The in-kernel Intel SGX driver (arch/x86/kernel/cpu/sgx/) and an emulated SGX CPU.

    uapi      asm/sgx.h: ioctl numbers, argument structs, SECINFO, SECS, TCS, SIGSTRUCT
    arch      the emulated CPU: CPUID, EPC/EPCM, ENCLS leaves
    encl      the enclave, the intent runs, sgx_vm_ops (open, fault, mprotect, access)
    driver    /dev/sgx_enclave and /dev/sgx_provision file operations
    ioctl     the seven ioctls
    vdso      entering enclave code: EENTER/ERESUME, AEX, ENCLU leaves, access checks
    measure   MRENCLAVE (ECREATE/EADD/EEXTEND records)
    sigstruct SIGSTRUCT building, RSA-3072 e=3 signing and verification, MRSIGNER
    image     enclave images: ELF (as the kselftest loads it) and a declarative format
    loader    ioctl wrappers and the real loaders' call sequences
    tools     `vmsim sgx measure` / `vmsim sgx sign`
"""
