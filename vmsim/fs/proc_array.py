"""/proc/PID/status: fs/proc/array.c proc_pid_status() with fs/proc/task_mmu.c
task_mem(), the fields a program reads about itself: its name, ids, umask, the memory
counters of its mm, its limits and capabilities.

What the model does not keep reads as an idle, unsignalled, single-threaded task:
Threads 1, no pending or blocked signals, no context switches; VmPeak and VmHWM (the
high-water marks) are the current VmSize and VmRSS.
"""

from __future__ import annotations

import posixpath

from ..mm.flags import VM_EXEC
from ..uapi import PAGE_SHIFT, RLIMIT_NOFILE, RLIMIT_SIGPENDING

#: include/uapi/linux/capability.h CAP_LAST_CAP + 1 on 6.18: the full capability set
#: of root is its low 41 bits
CAP_FULL_SET = (1 << 41) - 1
#: fs/proc/array.c: the capabilities a process with the model's credentials has
CAP_EMPTY = 0


def task_name(task) -> str:
    """task->comm: the program's file name, cut to TASK_COMM_LEN - 1 bytes (the model
    keeps no comm of its own: docs/deviations.md)."""
    exe = task.exe_file
    name = posixpath.basename(exe.path) if exe is not None else ""
    return name.encode("utf-8", "surrogateescape")[:15].decode("utf-8", "surrogateescape")


def _kb(pages: int) -> str:
    return f"{pages << (PAGE_SHIFT - 10):8d} kB"


def task_mem(task) -> list[tuple[str, str]]:
    """fs/proc/task_mmu.c task_mem(): the mm's counters."""
    mm = task.mm
    shmem = file = 0
    for vpn in mm.file_ptes:
        vma = mm.tree.find(vpn << PAGE_SHIFT)
        if vma is not None and vma.file is not None and vma.file.f_op.is_shmem:
            shmem += 1
        else:
            file += 1
    anon = len(mm.anon_pages)
    exe = task.exe_file
    text = sum((v.end - v.start) >> PAGE_SHIFT for v in mm.tree
               if v.flags & VM_EXEC and exe is not None and v.file is not None
               and v.file.inode is exe.inode)
    rss = anon + file + shmem
    return [("VmPeak", _kb(mm.total_vm)), ("VmSize", _kb(mm.total_vm)),
            ("VmLck", _kb(mm.locked_vm)), ("VmPin", _kb(0)), ("VmHWM", _kb(rss)),
            ("VmRSS", _kb(rss)), ("RssAnon", _kb(anon)), ("RssFile", _kb(file)),
            ("RssShmem", _kb(shmem)), ("VmData", _kb(mm.data_vm)), ("VmStk", _kb(mm.stack_vm)),
            ("VmExe", _kb(text)), ("VmLib", _kb(mm.exec_vm - text)),
            ("VmPTE", _kb(len(mm.pmd_tables))), ("VmSwap", _kb(0)), ("HugetlbPages", _kb(0))]


def proc_pid_status(task) -> str:
    """The text of /proc/PID/status for the process `task`."""
    ppid = 0
    ids = "\t".join([str(task.uid)] * 4)
    caps = f"{CAP_FULL_SET if task.uid == 0 else CAP_EMPTY:016x}"
    lines = [("Name", task_name(task)), ("Umask", f"{task.umask:04o}"),
             ("State", "R (running)"), ("Tgid", str(task.pid)), ("Ngid", "0"),
             ("Pid", str(task.pid)), ("PPid", str(ppid)), ("TracerPid", "0"),
             ("Uid", ids), ("Gid", ids), ("FDSize", str(_fdsize(task))), ("Groups", " "),
             ("NStgid", str(task.pid)), ("NSpid", str(task.pid)), ("Kthread", "0"),
             *task_mem(task),
             ("CoreDumping", "0"), ("THP_enabled", "1"), ("untag_mask", "0xffffffffffffffff"),
             ("Threads", "1"), ("SigQ", f"0/{task.rlimit(RLIMIT_SIGPENDING)}"),
             ("SigPnd", "0" * 16), ("ShdPnd", "0" * 16), ("SigBlk", "0" * 16),
             ("SigIgn", "0" * 16), ("SigCgt", "0" * 16), ("CapInh", "0" * 16),
             ("CapPrm", caps), ("CapEff", caps), ("CapBnd", f"{CAP_FULL_SET:016x}"),
             ("CapAmb", "0" * 16), ("NoNewPrivs", "0"), ("Seccomp", "0"),
             ("Seccomp_filters", "0"), ("Cpus_allowed", "3"), ("Cpus_allowed_list", "0-1"),
             ("voluntary_ctxt_switches", "0"), ("nonvoluntary_ctxt_switches", "0")]
    return "".join(f"{key}:\t{value}\n" for key, value in lines)


def _fdsize(task) -> int:
    """fdt->max_fds: the fd table's size, a power of two from 64 (NR_OPEN_DEFAULT on
    64-bit) up to what the highest open fd needs, within RLIMIT_NOFILE."""
    size = 64
    highest = max(task.files, default=0)
    while size <= highest and size < task.rlimit(RLIMIT_NOFILE):
        size *= 2
    return size
