"""Exhaustive exploration of call sequences (`vmsim check`, docs/check.md).

    world       the configuration (an enclave of a few pages with chosen intents, a
                window outside it, prot values), its start state, the alphabet of calls
    designs     the ->mprotect hook designs (merged, v40, v40-check-only, none) and
                driver variants as plugins
    state       canonical state keys and cheap snapshots
    properties  the intent invariant, mprotect's postcondition, validate(), leaks, and
                user predicates
    explore     the breadth-first search, sharded over local processes
    cluster     the same over Ray (optional extra, imported only for --ray)
    report      counterexamples as traces (vmsim replay) and scenarios (vmsim diff)
"""
