"""The emulated x86-64 core that executes a program's user-mode code under `vmsim run`:
the Unicorn engine (QEMU's TCG) with the model as its MMU and its kernel.

    cpu     Cpu: one emulated core; its TLB is filled by the model's page walk
            (arch/x86/mm/fault.c, mm/memory.c), SYSCALL stops it for the model
    regs    moving a thread's registers (PtRegs) in and out of the core
    cpuid   CPUID answered from a configured CPU model

The only package of the core library, with vmsim/run/, that imports unicorn.
"""
