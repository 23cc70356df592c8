"""x86: the processor and the kernel's arch/x86 code the model needs.

    ptrace   struct pt_regs: a thread's user registers (PtRegs)
    entry/   the ways in from user space: the vDSO image the project builds
             (entry/vdso/) and the syscall entry from registers (syscall_64.py)
    emu/     the CPU: real x86-64 code executed by Unicorn over the model's page
             tables (needs the `emu` extra)
    signal   signal frames on the user stack (arch/x86/kernel/signal*.c)
    vdso     a Python model of __vdso_sgx_enter_enclave() entering enclave code
             written as Python callables (the leaves it runs are sgx/enclu.py's)
    sgx/     the emulated SGX processor (EPC/EPCM, ENCLS, ENCLU and enclave mode,
             MRENCLAVE, SIGSTRUCT)
"""
