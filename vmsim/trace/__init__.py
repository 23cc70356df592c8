"""Trace replay: what a program did (an strace log, a JSON Lines trace, an enclave
loader's calls), replayed on the model with a verdict on every call.

    format   the JSON Lines trace format: Record, read/write, the schema
    strace   strace text -> Records (shares scenario.py's line parser)
    replay   Replayer: runs Records on a model process, compares, explains refusals
    views    maps / smaps / pmap-like rendering (rich only when colouring)
    demo     the bundled SGX demo trace (`vmsim`, `vmsim demo`)
    cli      replay_main, maps_main, demo_main (exit codes 0/1/2)
"""

from .format import Record, TraceError, load_trace, read_trace, write_trace  # noqa: F401
