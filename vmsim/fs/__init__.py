"""A small VFS: enough of fs/ for the mm layer to see files, mounts and devices."""
