"""The memory-map layer (Linux mm/): VMAs, their tree, split/merge, the syscalls, faults,
truncation's unmapping, fork and exit.

Closed: mm/ imports only uapi, errors and fs/file.py (struct file, file_operations).
Nothing here knows about SGX or any other driver: drivers plug in through
`VmOperations` (vm_operations_struct) and `FileOperations` (file_operations), which
the core calls through hooks.py, holding each member to its contract; and
shmem and hugetlbfs files are recognised by flags of their file operations, as
shmem_file() and is_file_hugepages() test f_op.
"""
