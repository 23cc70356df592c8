"""arch/x86/entry/: the ways into the kernel from user space that the kernel itself
ships. Here: vdso/, the project's own vDSO image (arch/x86/entry/vdso/), built from
our C and assembly sources with this machine's gcc and mapped as [vdso] by
vmsim.fs.binfmt_elf.
"""
