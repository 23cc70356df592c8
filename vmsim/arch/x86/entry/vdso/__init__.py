"""The vDSO image: arch/x86/entry/vdso/ of Linux 6.18. Our own sources (vclock_gettime.c,
vgetcpu.c, vgetrandom.c, vsgx.S, vdso-note.S, the linker script vdso.lds) and build.py,
which builds them into the ELF shared object the kernel maps as [vdso] (docs/vdso.md).
"""
