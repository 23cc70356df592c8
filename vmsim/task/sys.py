"""What a process asks the kernel about itself and the machine: kernel/sys.c (getpid,
the ids, uname, sysinfo, prlimit64 and getrlimit/setrlimit with their structs),
kernel/time/ (clock_gettime, clock_getres, gettimeofday, time, over the Kernel's
virtual clock: vmsim.task.timekeeping), drivers/char/random.c getrandom(2) (from the
Kernel's seeded generator), kernel/sched/syscalls.c sched_getaffinity(2) and
kernel/sys.c getcpu(2) and getrusage(2), and net/socket.c socket(2) (the other socket
calls: vmsim.fs.socket).

Each takes a Process and its raw register arguments, narrows them as the C prototype
does, and reads and writes user memory as the kernel does (EFAULT).
"""

from __future__ import annotations

import os
import struct

from ..errors import EAFNOSUPPORT, EFAULT, EINVAL, EPERM, ESRCH, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..uapi import RLIM_NLIMITS
from .exit import get_mm_rss, rusage
from .timekeeping import NSEC_PER_SEC

#: struct new_utsname: six char[65]
UTS_FIELD = 65
#: struct rlimit / rlimit64: rlim_cur, rlim_max
RLIMIT = struct.Struct("<QQ")
#: struct timespec, struct timeval: seconds and nano/microseconds
TIMESPEC = struct.Struct("<qq")
#: struct sysinfo (112 bytes on x86-64): uptime, loads[3], totalram, freeram, sharedram,
#: bufferram, totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit
SYSINFO = struct.Struct("<q3Q6QHH4xQQI4x")
#: include/uapi/linux/random.h getrandom(2)'s flags
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 0x1, 0x2, 0x4
#: the most one getrandom(2) returns (MAX_RW_COUNT)
GETRANDOM_MAX = 0x7FFFF000


def _int(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# --- ids ----------------------------------------------------------------------------

def sys_getpid(task) -> int:
    return task.pid


def sys_getpgid(task, pid: int) -> int:
    """getpgrp(2), getpgid(2), getsid(2): the model has no process groups or sessions;
    every process leads its own (ESRCH for no such process)."""
    return _find_process(task, _int(pid)).pid


def sys_getuid(task) -> int:
    """getuid, geteuid, getgid, getegid: the model's one credential (root's, by
    default; the group is the user's number)."""
    return task.uid


# --- the machine --------------------------------------------------------------------

def _domainname() -> bytes:
    try:
        with open("/proc/sys/kernel/domainname", "rb") as f:
            return f.read().strip()
    except OSError:
        return b"(none)"


def sys_newuname(task, name: int) -> int:
    """uname(2): kernel/sys.c newuname(): this machine's struct new_utsname, as
    os.uname() and the domain name give it (EFAULT)."""
    u = os.uname()
    fields = [os.fsencode(x) for x in (u.sysname, u.nodename, u.release, u.version, u.machine)]
    copy_to_user(task, name, b"".join(f[:UTS_FIELD - 1].ljust(UTS_FIELD, b"\0")
                                      for f in (*fields, _domainname())))
    return 0


def sys_sysinfo(task, info: int) -> int:
    """sysinfo(2): kernel/sys.c do_sysinfo(): uptime from the virtual clock, the
    Kernel's RAM (its commit charge counted as used), no swap, the processes, in
    bytes (mem_unit 1)."""
    kernel = task.kernel
    total = kernel.total_ram_pages * 4096
    used = min(kernel.committed * 4096, total)
    copy_to_user(task, info, SYSINFO.pack(kernel.clock.uptime(), 0, 0, 0, total, total - used,
                                          0, 0, 0, 0, len(kernel.processes), 0, 0, 0, 1))
    return 0


#: cpumask_size(): the bytes of a struct cpumask of the reference kernel (NR_CPUS 256)
CPUMASK_SIZE = 32


def _nr_cpu_ids() -> int:
    """This machine's possible CPUs (nr_cpu_ids)."""
    return max(os.sched_getaffinity(0)) + 1


def sys_sched_getaffinity(task, pid: int, length: int, mask: int) -> int:
    """sched_getaffinity(2): EINVAL for a length too short for nr_cpu_ids bits or not a
    multiple of a long; ESRCH for no such process; every CPU of this machine, in
    min(length, cpumask_size()) bytes (EFAULT), their count returned."""
    pid, length = _int(pid), length & 0xFFFFFFFF
    ncpu = _nr_cpu_ids()
    if length * 8 < ncpu or length & 7:
        raise kerr(EINVAL)
    _find_process(task, pid)
    size = min(length, CPUMASK_SIZE)
    copy_to_user(task, mask, ((1 << ncpu) - 1).to_bytes(size, "little"))
    return size


def sys_getcpu(task, cpu: int, node: int, cache: int) -> int:
    """getcpu(2): the model runs every thread on CPU 0 of node 0."""
    for addr in (cpu, node):
        if addr:
            copy_to_user(task, addr, struct.pack("<I", 0))
    return 0


def _find_process(task, pid: int):
    """find_task_by_vpid(): 0 is the caller; ESRCH for no live process."""
    if pid == 0:
        return task
    target = task.kernel.processes.get(pid)
    if target is None or pid < 0:
        raise kerr(ESRCH)
    return target


# --- limits: kernel/sys.c -----------------------------------------------------------

def sys_getrlimit(task, resource: int, rlim: int) -> int:
    """getrlimit(2): EINVAL past RLIM_NLIMITS, then struct rlimit (EFAULT)."""
    cur, hard = task.getrlimit(resource & 0xFFFFFFFF)
    copy_to_user(task, rlim, RLIMIT.pack(cur, hard))
    return 0


def sys_setrlimit(task, resource: int, rlim: int) -> int:
    """setrlimit(2): struct rlimit (EFAULT), then Process.setrlimit()."""
    cur, hard = RLIMIT.unpack(copy_from_user(task, rlim, RLIMIT.size))
    task.setrlimit(resource & 0xFFFFFFFF, cur, hard)
    return 0


def sys_prlimit64(task, pid: int, resource: int, new: int, old: int) -> int:
    """prlimit64(2): the new limits read first (EFAULT); EINVAL past RLIM_NLIMITS; the
    process (ESRCH; another one only by a caller with its uid or CAP_SYS_RESOURCE:
    EPERM); then the old limits stored (EFAULT) and the new ones set
    (Process.setrlimit(): EINVAL, EPERM)."""
    resource = resource & 0xFFFFFFFF
    limits = RLIMIT.unpack(copy_from_user(task, new, RLIMIT.size)) if new else None
    if resource >= RLIM_NLIMITS:
        raise kerr(EINVAL)
    target = _find_process(task, _int(pid))
    if target is not task and target.uid != task.uid and not task.capable("CAP_SYS_RESOURCE"):
        raise kerr(EPERM)
    before = target.getrlimit(resource)
    if limits is not None:
        target.setrlimit(resource, *limits)
    if old:
        copy_to_user(task, old, RLIMIT.pack(*before))
    return 0


# --- time ---------------------------------------------------------------------------

def _timespec(ns: int) -> bytes:
    return TIMESPEC.pack(ns // NSEC_PER_SEC, ns % NSEC_PER_SEC)


def sys_clock_gettime(task, clockid: int, tp: int) -> int:
    """clock_gettime(2): the clock (EINVAL), then struct timespec (EFAULT)."""
    copy_to_user(task, tp, _timespec(task.kernel.clock.read(_int(clockid))))
    return 0


def sys_clock_getres(task, clockid: int, tp: int) -> int:
    """clock_getres(2): the resolution (EINVAL); NULL tp asks only whether the clock
    exists."""
    res = task.kernel.clock.resolution(_int(clockid))
    if tp:
        copy_to_user(task, tp, _timespec(res))
    return 0


def sys_gettimeofday(task, tv: int, tz: int) -> int:
    """gettimeofday(2): CLOCK_REALTIME as struct timeval, and sys_tz (UTC: zeros)."""
    if tv:
        ns = task.kernel.clock.read(0)
        copy_to_user(task, tv, TIMESPEC.pack(ns // NSEC_PER_SEC, ns % NSEC_PER_SEC // 1000))
    if tz:
        copy_to_user(task, tz, bytes(8))
    return 0


def sys_time(task, tloc: int) -> int:
    """time(2): the seconds of CLOCK_REALTIME, also stored at tloc (EFAULT)."""
    seconds = task.kernel.clock.read(0) // NSEC_PER_SEC
    if tloc:
        copy_to_user(task, tloc, struct.pack("<q", seconds))
    return seconds


# --- drivers/char/random.c ----------------------------------------------------------

def sys_getrandom(task, buf: int, count: int, flags: int) -> int:
    """getrandom(2): EINVAL for unknown flags or GRND_INSECURE with GRND_RANDOM; at most
    MAX_RW_COUNT bytes, from the Kernel's seeded generator (the pool is always ready);
    access_ok() (EFAULT); a buffer faulting part way gives a short count."""
    flags &= 0xFFFFFFFF
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or \
            flags & GRND_INSECURE and flags & GRND_RANDOM:
        raise kerr(EINVAL)
    count = min(count & 0xFFFFFFFFFFFFFFFF, GETRANDOM_MAX)
    if buf + count > task.kernel.task_size:
        raise kerr(EFAULT)
    done = 0
    data = task.kernel.random.randbytes(count)
    while done < count:
        chunk = min(4096 - (buf + done) % 4096, count - done)
        try:
            copy_to_user(task, buf + done, data[done:done + chunk])
        except OSError:
            if not done:
                raise
            break
        done += chunk
    return done


# --- net/socket.c -------------------------------------------------------------------

def sys_socket(task, family: int, type_: int, protocol: int) -> int:
    """socket(2): the model has no network stack, and of AF_UNIX only the pairs of
    socketpair(2) (vmsim.fs.socket), so every address family is EAFNOSUPPORT, as a
    kernel built without it answers; glibc then goes on without the service it wanted
    (nscd: the files of /etc)."""
    raise kerr(EAFNOSUPPORT)


# --- kernel/sys.c getrusage(2) ------------------------------------------------------

#: getrusage(2)'s `who`
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1


def sys_getrusage(task, who: int, ru: int) -> int:
    """getrusage(2): ru_maxrss (KiB) as the model knows it, the group's high-water mark
    and what its mm maps now (RUSAGE_SELF), the mm's (RUSAGE_THREAD), or the largest of
    the reaped children's (RUSAGE_CHILDREN); no times or counts (vmsim.task.exit);
    EINVAL for another `who`."""
    who = _int(who)
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise kerr(EINVAL)
    signal = task.signal
    maxrss = signal.cmaxrss if who == RUSAGE_CHILDREN else get_mm_rss(task)
    if who == RUSAGE_SELF:
        maxrss = max(maxrss, signal.maxrss)
    copy_to_user(task, ru, rusage(maxrss))
    return 0
