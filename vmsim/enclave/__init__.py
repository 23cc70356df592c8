"""The user-space side of SGX: what an enclave's builder, signer and loader do, as
calls on a vmsim Process (the kernel side is vmsim/drivers/sgx/, the CPU
vmsim/arch/x86/sgx/).

    segment     Segment (a run of pages with one SECINFO), the TCS page, ImageError
    image       EnclaveImage: SECS and SIGSTRUCT parameters and the ordered segments;
                MRENCLAVE, the SECS, the signed SIGSTRUCT
    elf         reading an enclave ELF as tools/testing/selftests/sgx/load.c does
    textformat  the declarative image format (docs/enclave-image-format.md)
    signing     RSA-3072 keys, building and signing a SIGSTRUCT (the kselftest's
                sigstruct.c, sgx_sign)
    loader      the ioctl wrappers and the real loaders' call sequences (the kselftest,
                Gramine, the Intel SGX SDK, enarx)
"""
