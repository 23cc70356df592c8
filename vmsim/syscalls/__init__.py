"""The syscall layer above Process: the one table of the x86-64 syscalls vmsim knows
(table.py), the strace syntax they are written in (strace.py), the names of numbers
(names.py: constants, errnos, signals) and the one dispatcher that applies a decoded
call to a vmsim Process (dispatch.py).

Scenarios (vmsim/diff/), strace logs and JSON Lines traces (vmsim/trace/) all go
through these modules; inputs.py reads them -- and every other input file: maps
dumps, enclave images, keys -- in bounded time and memory, and says how a one-line
reason quotes them.
"""
