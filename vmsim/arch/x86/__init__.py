"""x86: the processor and the kernel's arch/x86 code the model needs.

    vdso    arch/x86/entry/vdso/vsgx.S: __vdso_sgx_enter_enclave(), enclave mode and
            the ENCLU leaves enclave code runs
    sgx/    the emulated SGX processor (EPC/EPCM, ENCLS, MRENCLAVE, SIGSTRUCT)
"""
