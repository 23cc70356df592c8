"""Trace replay: what a program did (an strace log, a JSON Lines trace, an enclave
loader's calls), replayed on the model with a verdict on every call.

    format   the JSON Lines trace format: Record, Trace, parse_jsonl, write_trace
    strace   strace text -> Records (on vmsim.syscalls.strace's line grammar)
    load     load_trace / read_trace: either format, from a file or text
    replay   Replayer: runs Records on a model process through the one dispatcher
             (vmsim.syscalls.dispatch) from the trace's execve (or a maps dump) and
             compares, the final maps too (final_differences)
    record   `vmsim record`: a real program's calls (strace) and its maps at exec
             and exit (a ptrace tracer), with ASLR off
    explain  why a call was refused, asked of the SGX driver and the mm
    views    maps / smaps / pmap-like rendering (rich only when colouring)
    demo     the bundled SGX demo trace and its Recorder

The command line is vmsim.cli.trace (`vmsim replay`, `vmsim maps`, `vmsim demo`) and
vmsim.cli.record (`vmsim record`).
"""
