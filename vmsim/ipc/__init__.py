"""System V IPC (Linux ipc/): the objects of a Kernel's IPC namespace that processes map
into their address spaces, shared memory segments (shm.py). It sits above mm/ and fs/
and below process.py; mm/ never sees it but through the file and VMA operations of a
segment's attaches.
"""
