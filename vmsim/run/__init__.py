"""`vmsim run`: real x86-64 programs executed on the emulated core (vmsim.arch.x86.emu)
with the model as their kernel.

    machine   Machine: a Kernel, its threads, the core, and the run loop (schedule,
              run to a syscall or fault, serve it, deliver signals, again)
    strace    each syscall as strace prints it (`vmsim run --trace`)
"""
