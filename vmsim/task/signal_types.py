"""The signal ABI and the kernel's signal bookkeeping types, as in
include/uapi/asm-generic/signal.h (x86-64 shares it), include/uapi/asm-generic/siginfo.h,
include/linux/signal_types.h (struct sigpending, struct k_sigaction, struct ksignal) and
include/linux/sched/signal.h (struct sighand_struct, struct signal_struct).

The numbers are plain ints here: vmsim.uapi's SIGSEGV/SIGBUS are the names that
vmsim.errors.Fault reports, and FAULT_SIGNALS maps them to these numbers. Signal sets
are ints with bit n-1 for signal n (the kernel's 64-bit sigset_t on x86-64).

Nothing here knows a thread: vmsim.task.thread imports this module, and
vmsim.task.signal (kernel/signal.c) works on both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

#: _NSIG: signals 1..64; SIGRTMIN: the first real-time signal (the kernel's, not glibc's 34)
NSIG = 64
SIGRTMIN = 32

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT = 9, 10, 11, 12, 13, 14, 15, 16
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU = 17, 18, 19, 20, 21, 22, 23, 24
SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS = 25, 26, 27, 28, 29, 30, 31

#: the signal numbers of the model's memory faults (vmsim.errors.Fault.signal)
FAULT_SIGNALS = {"SIGSEGV": SIGSEGV, "SIGBUS": SIGBUS}

# --- sa_handler, sa_flags (include/uapi/asm-generic/signal-defs.h, x86 SA_RESTORER) ---
SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_UNSUPPORTED = 0x00000400
SA_EXPOSE_TAGBITS = 0x00000800
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
#: include/linux/signal_types.h UAPI_SA_FLAGS: the flags sigaction keeps (others are cleared,
#: so that a program can detect unsupported bits)
UAPI_SA_FLAGS = (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER
                 | SA_RESETHAND | SA_EXPOSE_TAGBITS | SA_RESTORER)

# --- sigprocmask(2) how, sigaltstack(2) ---
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SS_ONSTACK, SS_DISABLE = 1, 2
SS_AUTODISARM = 1 << 31
SS_FLAG_BITS = SS_AUTODISARM
#: include/uapi/asm/signal.h: the smallest alternate stack sigaltstack() accepts
MINSIGSTKSZ = 2048

# --- si_code (include/uapi/asm-generic/siginfo.h) ---
SI_USER, SI_KERNEL = 0, 0x80
SI_QUEUE, SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_SIGIO, SI_TKILL, SI_DETHREAD = -1, -2, -3, -4, -5, -6, -7
SI_ASYNCNL = -60
SEGV_MAPERR, SEGV_ACCERR, SEGV_BNDERR, SEGV_PKUERR = 1, 2, 3, 4
BUS_ADRALN, BUS_ADRERR, BUS_OBJERR, BUS_MCEERR_AR, BUS_MCEERR_AO = 1, 2, 3, 4, 5
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
#: the si_codes of the model's memory faults (vmsim.errors.Fault.code)
FAULT_CODES = {"SEGV_MAPERR": SEGV_MAPERR, "SEGV_ACCERR": SEGV_ACCERR, "SEGV_PKUERR": SEGV_PKUERR,
               "BUS_ADRERR": BUS_ADRERR}
#: the number of si_codes each signal with its own codes defines (NSIGILL, NSIGSEGV, ...)
#: (SIGPOLL is SIGIO)
SIG_SICODES = {SIGILL: 11, SIGFPE: 15, SIGSEGV: 10, SIGBUS: 5, SIGTRAP: 6, SIGCHLD: 6, SIGIO: 6, SIGSYS: 2}
NSIGPOLL = 6


def sigmask(sig: int) -> int:
    """include/linux/signal.h sigmask(): the bit of signal `sig` in a sigset."""
    return 1 << (sig - 1)


#: a full 64-bit sigset
SIGSET_ALL = (1 << NSIG) - 1
#: what user space can never block (sigprocmask, sa_mask, rt_sigreturn drop them)
UNBLOCKABLE = sigmask(SIGKILL) | sigmask(SIGSTOP)
#: kernel/signal.c SYNCHRONOUS_MASK: signals an instruction raises, dequeued first
SYNCHRONOUS_MASK = (sigmask(SIGSEGV) | sigmask(SIGBUS) | sigmask(SIGILL) | sigmask(SIGTRAP)
                    | sigmask(SIGFPE) | sigmask(SIGSYS))
# include/linux/signal.h: the default actions (for signals below SIGRTMIN; every real-time
# signal's default is to terminate)
SIG_KERNEL_ONLY_MASK = UNBLOCKABLE
SIG_KERNEL_STOP_MASK = sigmask(SIGSTOP) | sigmask(SIGTSTP) | sigmask(SIGTTIN) | sigmask(SIGTTOU)
SIG_KERNEL_COREDUMP_MASK = (sigmask(SIGQUIT) | sigmask(SIGILL) | sigmask(SIGTRAP) | sigmask(SIGABRT)
                            | sigmask(SIGFPE) | sigmask(SIGSEGV) | sigmask(SIGBUS) | sigmask(SIGSYS)
                            | sigmask(SIGXCPU) | sigmask(SIGXFSZ))
SIG_KERNEL_IGNORE_MASK = sigmask(SIGCONT) | sigmask(SIGCHLD) | sigmask(SIGWINCH) | sigmask(SIGURG)


def valid_signal(sig: int) -> bool:
    """include/linux/signal.h valid_signal(): 0 (the null signal) to 64."""
    return 0 <= sig <= NSIG


def _in(sig: int, mask: int) -> bool:
    return 0 < sig < SIGRTMIN and bool(sigmask(sig) & mask)


def sig_kernel_only(sig: int) -> bool:
    """SIGKILL and SIGSTOP: neither caught, blocked nor ignored."""
    return _in(sig, SIG_KERNEL_ONLY_MASK)


def sig_kernel_coredump(sig: int) -> bool:
    """The default action is to dump core and terminate."""
    return _in(sig, SIG_KERNEL_COREDUMP_MASK)


def sig_kernel_ignore(sig: int) -> bool:
    """The default action is to ignore the signal."""
    return _in(sig, SIG_KERNEL_IGNORE_MASK)


def sig_kernel_stop(sig: int) -> bool:
    """The default action is to stop the thread group."""
    return _in(sig, SIG_KERNEL_STOP_MASK)


# --- siginfo_t ------------------------------------------------------------------------

#: sizeof(struct kernel_siginfo): what the kernel keeps and copies; the user's siginfo_t
#: is SI_MAX_SIZE bytes, the rest (SI_EXPANSION_SIZE) always zero
KERNEL_SIGINFO_SIZE = 48
SI_MAX_SIZE = 128
SI_EXPANSION_SIZE = SI_MAX_SIZE - KERNEL_SIGINFO_SIZE
_HEAD = struct.Struct("<iii")


@dataclass(frozen=True)
class SigInfo:
    """A kernel_siginfo_t: si_signo, si_errno, si_code (offsets 0, 4, 8), then the union
    _sifields at 16, as raw bytes so that a siginfo a program queued itself (rt_sigqueueinfo)
    goes back to it byte for byte. Invariant: len(raw) == KERNEL_SIGINFO_SIZE."""

    raw: bytes

    @property
    def signo(self) -> int:
        return _HEAD.unpack_from(self.raw)[0]

    @property
    def errno(self) -> int:
        return _HEAD.unpack_from(self.raw)[1]

    @property
    def code(self) -> int:
        return _HEAD.unpack_from(self.raw)[2]

    @property
    def addr(self) -> int:
        """si_addr (the fault layouts)."""
        return struct.unpack_from("<Q", self.raw, 16)[0]

    @property
    def pid(self) -> int:
        """si_pid (the kill, rt and chld layouts)."""
        return struct.unpack_from("<i", self.raw, 16)[0]

    def with_signo(self, sig: int) -> SigInfo:
        """The same siginfo with si_signo replaced (__copy_siginfo_from_user())."""
        return SigInfo(_HEAD.pack(sig, self.errno, self.code) + self.raw[12:])

    def to_user(self) -> bytes:
        """copy_siginfo_to_user(): the kernel_siginfo, then zeros up to SI_MAX_SIZE."""
        return self.raw + bytes(SI_EXPANSION_SIZE)

    @staticmethod
    def build(sig: int, code: int, errno: int = 0, *fields: tuple[int, str, int]) -> SigInfo:
        """clear_siginfo() then the given (offset, struct format, value) fields set."""
        raw = bytearray(KERNEL_SIGINFO_SIZE)
        _HEAD.pack_into(raw, 0, sig, errno, code)
        for offset, fmt, value in fields:
            struct.pack_into(fmt, raw, offset, value)
        return SigInfo(bytes(raw))


def kill_info(sig: int, code: int, pid: int, uid: int) -> SigInfo:
    """The SIL_KILL layout: si_pid at 16, si_uid at 20 (kill, tkill, SEND_SIG_PRIV)."""
    return SigInfo.build(sig, code, 0, (16, "<i", pid), (20, "<I", uid))


def fault_info(sig: int, code: int, addr: int, pkey: int | None = None) -> SigInfo:
    """The SIL_FAULT layout: si_addr at 16; for SEGV_PKUERR si_pkey at 0x20."""
    if pkey is None:
        return SigInfo.build(sig, code, 0, (16, "<Q", addr))
    return SigInfo.build(sig, code, 0, (16, "<Q", addr), (0x20, "<I", pkey))


def known_siginfo_layout(sig: int, code: int) -> bool:
    """kernel/signal.c known_siginfo_layout(): an si_code whose fields the kernel knows;
    an unknown one must leave the user's expansion bytes zero (else E2BIG)."""
    if code == SI_KERNEL:
        return True
    if code > SI_USER:
        if sig in SIG_SICODES:
            return code <= SIG_SICODES[sig]
        return code <= NSIGPOLL
    return code >= SI_DETHREAD or code == SI_ASYNCNL


# --- the kernel's bookkeeping ------------------------------------------------------------

@dataclass
class SigAction:
    """struct k_sigaction / the x86-64 struct sigaction: sa_handler (SIG_DFL, SIG_IGN or an
    address), sa_flags, sa_restorer, sa_mask. Invariant: mask never holds SIGKILL or SIGSTOP
    once installed; flags hold only UAPI_SA_FLAGS."""

    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    #: struct sigaction in user memory: handler, flags, restorer, mask (32 bytes)
    LAYOUT = struct.Struct("<QQQQ")

    def pack(self) -> bytes:
        return self.LAYOUT.pack(self.handler, self.flags, self.restorer, self.mask)

    @classmethod
    def unpack(cls, raw: bytes) -> SigAction:
        return cls(*cls.LAYOUT.unpack(raw))


@dataclass
class SigPending:
    """struct sigpending: the pending set and the queue of siginfos behind it. Invariant:
    every queued siginfo's signal is in `signal`; a signal below SIGRTMIN is queued at most
    once (legacy_queue()); a pending signal may have no queued siginfo (SIGKILL, or one
    whose siginfo is not kept: it is delivered with SI_USER and zero ids)."""

    signal: int = 0
    queue: list[SigInfo] = field(default_factory=list)

    def flush(self, mask: int) -> None:
        """flush_sigqueue_mask(): forget the signals in mask and their siginfos."""
        self.signal &= ~mask
        self.queue = [q for q in self.queue if not sigmask(q.signo) & mask]


@dataclass
class SigHand:
    """struct sighand_struct: the handler table, action[sig-1] for signal sig, shared by
    the threads of a group (CLONE_SIGHAND)."""

    action: list[SigAction] = field(default_factory=lambda: [SigAction() for _ in range(NSIG)])

    def copy(self) -> SigHand:
        """copy_sighand() of fork: the child starts with the parent's actions."""
        return SigHand([SigAction(a.handler, a.flags, a.restorer, a.mask) for a in self.action])


@dataclass
class KSignal:
    """struct ksignal: a signal get_signal() chose to deliver to a handler, with the action
    as it was when dequeued (SA_RESETHAND may have reset the table's since)."""

    sig: int
    info: SigInfo
    ka: SigAction


#: signal_struct.flags
SIGNAL_GROUP_EXIT = 0x00000004


@dataclass
class ItimerReal:
    """The ITIMER_REAL timer of a thread group (signal_struct real_timer, it_real_incr),
    on the Kernel's virtual clock (kernel.clock.elapsed), in nanoseconds. Invariants:
    expires is None while the timer is not armed; interval is 0 for a one-shot timer;
    fired is the expiry that last sent SIGALRM (a periodic timer is re-armed from it when
    the signal is dequeued)."""

    expires: int | None = None
    interval: int = 0
    fired: int | None = None


@dataclass
class SignalStruct:
    """The part of struct signal_struct a thread group's signals use: the group's shared
    pending set, its handler table (vmsim models CLONE_SIGHAND only together with
    CLONE_THREAD: the table belongs to the group), SIGNAL_GROUP_EXIT with its exit code and
    whether the exit signal is still to be dequeued (SIGNAL_EXIT_DEQUEUE), the thread
    complete_signal() chose last, ITIMER_REAL (and the values of ITIMER_VIRTUAL/PROF,
    which never expire in the model), the resident-set high-water marks (in pages) of
    the group (maxrss) and of its reaped descendants (cmaxrss), and the group's threads
    (signal->thread_head).

    `threads` holds vmsim.task.thread.Thread objects (typed loosely: thread.py imports
    this module); a Thread joins its group's list when it is created and leaves it at
    exit (vmsim.task.signal.exit_signals()). Invariant: every thread in it has
    `thread.process.signal is self`; curr_target is one of them or None."""

    shared_pending: SigPending = field(default_factory=SigPending)
    sighand: SigHand = field(default_factory=SigHand)
    flags: int = 0
    group_exit_code: int = 0
    exit_dequeue: bool = False
    curr_target: object = None
    real_timer: ItimerReal = field(default_factory=ItimerReal)
    cpu_timers: dict[int, tuple[int, int]] = field(default_factory=dict)
    maxrss: int = 0
    cmaxrss: int = 0
    threads: list = field(default_factory=list)
