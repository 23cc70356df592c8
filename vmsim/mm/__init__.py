"""The memory-map layer (Linux mm/): VMAs, their tree, split/merge and the syscalls.

Nothing here knows about SGX or any other driver: drivers plug in through
`VmOperations` (vm_operations_struct) and `FileOperations` (file_operations).
"""
