"""A test enclave and an SGX host program of vmsim's own, in C and assembly, built with
this machine's gcc when first asked for (build.py). They are what a runtime developer
runs under `vmsim run` to see real enclave code on the emulated SGX CPU
(docs/sgx.md, "What a runtime developer can run").

    encl_abi.h         the call ABI between host and enclave: the Linux SGX
                       kselftest's operations (defines.h), and EREPORT, EGETKEY
    sgx_arch.h         the SGX structures and constants both sides use
    encl_entry.S       the TCS pages, the entry points (stack per TCS, EEXIT with the
                       registers cleared), the SSA frames and the stacks
    encl_ops.c         the operations and their table
    encl.lds           the layout: TCS pages, text, data (encl_buffer first), SSA, stacks
    host.h             what the host's parts share
    host_load.c        loading as the kselftest's load.c does
    host_vdso.c        __vdso_sgx_enter_enclave from AT_SYSINFO_EHDR
    host_call.S        the vDSO call that keeps the callee-saved registers
    host_scenarios.c   the kselftest's sixteen scenarios, and ereport, egetkey
    host_main.c        the command line and the TAP output
    build.py           building both (cached), and the SIGSTRUCTs the host reads
"""
