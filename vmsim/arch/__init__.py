"""Architecture-specific code, as in Linux arch/: only x86 (x86_64) is modelled."""
