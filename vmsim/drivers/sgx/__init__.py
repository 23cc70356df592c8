"""The in-kernel Intel SGX driver, Linux 6.18 arch/x86/kernel/cpu/sgx/ (docs/sgx.md).

    uapi    arch/x86/include/uapi/asm/sgx.h: the ioctl numbers and argument structs,
            SGX_PAGE_MEASURE
    encl    encl.c: struct sgx_encl and its pages, the per-page intent
            (vm_max_prot_bits) as runs, sgx_vm_ops (open, fault, mprotect, access);
            the backing store, Version Array pages, ELDU
    main    main.c: the EPC page allocator and its reclaimer (the active page list,
            sgx_reclaim_pages(), EWB, ksgxd and its watermarks)
    ioctl   ioctl.c: the SGX_IOC_ENCLAVE_* ioctls; sgx_provision_fops (main.c)
    driver  driver.c: the /dev/sgx_enclave file operations; registering the devices

The CPU the driver runs ENCLS on (EPC, EPCM, the leaves, MRENCLAVE, SIGSTRUCT checks)
and the architectural constants are vmsim/arch/x86/sgx/; the vDSO that enters enclaves
is vmsim/arch/x86/vdso.py; the user-space side (images, signing, loaders) is
vmsim/enclave/.
"""
