"""Drivers that plug into the mm layer through FileOperations and VmOperations."""
