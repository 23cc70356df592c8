"""Signals (vmsim.task.signal, vmsim.arch.x86.signal) against this machine's kernel.

Native probes (C, built with gcc at test time) print what a real handler receives: the
layout of its rt_sigframe relative to its stack pointer at entry, the ucontext and
siginfo fields, the FPU frame's software bytes, the SIGSEGV of a write to a read-only
page, the alternate stack, and the errno of the signal syscalls for bad arguments. The
model builds the same frames and answers the same calls on a Process from
Kernel().spawn() with a Thread whose registers the test sets, without a CPU.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal as pysignal
import struct
import subprocess
import sys

import pytest

import vmsim
from vmsim.arch.x86 import signal as xsig
from vmsim.arch.x86.ptrace import PtRegs
from vmsim.errors import ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, Fault
from vmsim.task import signal as ksig
from vmsim.task.signal_types import (
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESETHAND,
    SA_RESTART,
    SA_RESTORER,
    SA_SIGINFO,
    SEGV_PKUERR,
    SI_KERNEL,
    SI_QUEUE,
    SI_TKILL,
    SIG_IGN,
    SIGALRM,
    SIGCHLD,
    SIGKILL,
    SIGSEGV,
    SIGTERM,
    SIGUSR1,
    SIGUSR2,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    SigAction,
    sigmask,
)
from vmsim.task.thread import GroupExit, Thread
from vmsim.uapi import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_CORE,
    RLIMIT_SIGPENDING,
)

U64 = (1 << 64) - 1
RESTORER = 0x401234
HANDLER = 0x401100
#: where the model's interrupted code made its syscall: rip is past SYSCALL
SYSCALL_RIP = 0x402002
NR_RT_SIGPROCMASK, NR_READ, NR_PAUSE, NR_NANOSLEEP = 14, 0, 34, 35

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="the native probes need gcc")

FRAME_PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <cpuid.h>

uintptr_t entry_rsp;
void handler(int sig, siginfo_t *si, void *ucv);
__asm__(".text\n.globl entry_stub\nentry_stub:\n\tmov %rsp, entry_rsp(%rip)\n\tjmp handler\n");
void entry_stub(int, siginfo_t *, void *);
static const char *label;
static char *page;
static char altstack[65536] __attribute__((aligned(4096)));

void handler(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    uintptr_t sp = entry_rsp, fp = (uintptr_t)uc->uc_mcontext.fpregs;
    unsigned char *fx = (unsigned char *)fp;
    uint32_t magic1, ext, xsz, magic2 = 0; uint64_t xfeat;
    memcpy(&magic1, fx + 464, 4); memcpy(&ext, fx + 468, 4);
    memcpy(&xfeat, fx + 472, 8); memcpy(&xsz, fx + 480, 4); memcpy(&magic2, fx + xsz, 4);
    sigset_t cur; sigprocmask(SIG_BLOCK, NULL, &cur);
    uintptr_t isp = uc->uc_mcontext.gregs[REG_RSP];
    printf("[%s]\n", label);
    printf("sig=%d info_minus_sp=%ld uc_minus_sp=%ld sp_mod16=%lu\n", sig,
           (long)((uintptr_t)si - sp), (long)((uintptr_t)uc - sp), (unsigned long)(sp % 16));
    printf("fpstate_minus_sp=%ld fpstate_mod64=%lu interrupted_sp_minus_sp=%ld interrupted_sp_mod64=%lu\n",
           (long)(fp - sp), (unsigned long)(fp % 64), (long)(isp - sp), (unsigned long)(isp % 64));
    printf("uc_flags=%lu uc_link=%lu ss_sp=%lu ss_flags=%d ss_size=%lu\n", uc->uc_flags,
           (unsigned long)uc->uc_link, (unsigned long)uc->uc_stack.ss_sp, uc->uc_stack.ss_flags,
           (unsigned long)uc->uc_stack.ss_size);
    printf("uc_sigmask=%lu oldmask=%lu blocked_in_handler=%lu\n", ((unsigned long *)&uc->uc_sigmask)[0],
           (unsigned long)uc->uc_mcontext.gregs[REG_OLDMASK], ((unsigned long *)&cur)[0]);
    printf("si_signo=%d si_errno=%d si_code=%d si_pid_is_self=%d si_uid=%u\n", si->si_signo,
           si->si_errno, si->si_code, si->si_pid == getpid(), (unsigned)si->si_uid);
    printf("trapno=%ld err=%ld cr2_minus_page=%ld csgsfs=%lu\n", (long)uc->uc_mcontext.gregs[REG_TRAPNO],
           (long)uc->uc_mcontext.gregs[REG_ERR], (long)(uc->uc_mcontext.gregs[REG_CR2] - (long)page),
           (unsigned long)uc->uc_mcontext.gregs[REG_CSGSFS]);
    printf("magic1=%u extended_size=%u xfeatures=%lu xstate_size=%u magic2=%u\n",
           magic1, ext, (unsigned long)xfeat, xsz, magic2);
    printf("frame_mxcsr=%u frame_fcw=%u handler_mxcsr=%u\n", *(uint32_t *)(fx + 24),
           *(uint16_t *)fx, __builtin_ia32_stmxcsr());
    if (sig == SIGSEGV) {
        printf("si_addr_minus_page=%ld\n", (long)((char *)si->si_addr - page));
        mprotect(page, 4096, PROT_READ | PROT_WRITE);
    }
    if (sig == SIGUSR2) {
        stack_t now, other = {altstack, 0, 8192};
        sigaltstack(NULL, &now);
        printf("alt_top_minus_sp=%ld query_flags=%d set_while_on_it=%d\n",
               (long)((uintptr_t)altstack + sizeof(altstack) - sp), now.ss_flags,
               sigaltstack(&other, NULL) ? -errno : 0);
    }
    fflush(stdout);
}

int main(void)
{
    unsigned a, b, c, d;
    __cpuid_count(0xd, 9, a, b, c, d);
    printf("[cpu]\npkru_offset=%u\n", b);
    struct sigaction sa = {0};
    sa.sa_sigaction = entry_stub;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    stack_t ss = {altstack, 0, sizeof(altstack)};
    sigaltstack(&ss, NULL);
    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGTERM);
    sigprocmask(SIG_BLOCK, &m, NULL);
    __builtin_ia32_ldmxcsr(0x1fa0);
    label = "raise"; raise(SIGUSR1);
    label = "segv"; page[16] = 1;
    label = "stale"; raise(SIGUSR1);
    label = "altstack"; raise(SIGUSR2);
    return 0;
}
"""

ERRNO_PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#define SA_RESTORER 0x04000000
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

struct ksa { uint64_t handler, flags, restorer, mask; };
struct kss { uint64_t sp; int flags; int pad; uint64_t size; };
static long r(long v) { return v < 0 ? -errno : v; }
#define P(name, expr) printf("%s=%ld\n", name, r(expr))
static char altstack[8192] __attribute__((aligned(64)));

int main(void)
{
    struct ksa act = {0x1234, SA_RESTORER, 0x5678, 0}, old;
    uint64_t set, oset;
    printf("[errno]\n");
    P("sigaction_kill", syscall(SYS_rt_sigaction, SIGKILL, &act, NULL, 8));
    P("sigaction_stop_query", syscall(SYS_rt_sigaction, SIGSTOP, NULL, &old, 8));
    P("sigaction_0", syscall(SYS_rt_sigaction, 0, NULL, &old, 8));
    P("sigaction_65", syscall(SYS_rt_sigaction, 65, NULL, &old, 8));
    P("sigaction_64", syscall(SYS_rt_sigaction, 64, NULL, &old, 8));
    P("sigaction_size4", syscall(SYS_rt_sigaction, SIGUSR1, &act, NULL, 4));
    P("sigaction_badact", syscall(SYS_rt_sigaction, SIGUSR1, (void *)8, NULL, 8));
    P("sigaction_badoact", syscall(SYS_rt_sigaction, SIGUSR1, &act, (void *)8, 8));
    syscall(SYS_rt_sigaction, SIGUSR1, NULL, &old, 8);
    printf("after_badoact_handler=%lu\n", (unsigned long)old.handler);
    act.flags = 0xffffffffffffffffUL; act.mask = ~0UL;
    P("sigaction_allflags", syscall(SYS_rt_sigaction, SIGUSR2, &act, NULL, 8));
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &old, 8);
    printf("stored_flags=%lu\nstored_mask=%lu\n", (unsigned long)old.flags, (unsigned long)old.mask);
    P("procmask_badhow_noset", syscall(SYS_rt_sigprocmask, 99, NULL, &oset, 8));
    set = 1;
    P("procmask_badhow", syscall(SYS_rt_sigprocmask, 99, &set, NULL, 8));
    P("procmask_size4", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 4));
    P("procmask_badset", syscall(SYS_rt_sigprocmask, SIG_BLOCK, (void *)8, NULL, 8));
    set = ~0UL;
    P("procmask_all", syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, NULL, 8));
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &oset, 8);
    printf("blocked_all=%lu\n", (unsigned long)oset);
    P("procmask_badoset", syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, (void *)8, 8));
    P("sigpending_16", syscall(SYS_rt_sigpending, &set, 16));
    P("sigpending_4", syscall(SYS_rt_sigpending, &set, 4));
    P("sigpending_bad", syscall(SYS_rt_sigpending, (void *)8, 8));
    struct kss ss = {(uint64_t)altstack, 0, 0, 2047}, os;
    P("altstack_small", syscall(SYS_sigaltstack, &ss, NULL));
    ss.size = 8192; ss.flags = 5;
    P("altstack_badflags", syscall(SYS_sigaltstack, &ss, NULL));
    memset(&os, 0xff, sizeof(os));
    P("altstack_query0", syscall(SYS_sigaltstack, NULL, &os));
    printf("initial_sp=%lu\ninitial_flags=%d\ninitial_pad=%d\ninitial_size=%lu\n",
           (unsigned long)os.sp, os.flags, os.pad, (unsigned long)os.size);
    ss.flags = SS_ONSTACK;
    P("altstack_onstack_flag", syscall(SYS_sigaltstack, &ss, NULL));
    syscall(SYS_sigaltstack, NULL, &os);
    printf("set_flags=%d\nset_size=%lu\n", os.flags, (unsigned long)os.size);
    ss.flags = SS_AUTODISARM;
    P("altstack_autodisarm", syscall(SYS_sigaltstack, &ss, NULL));
    syscall(SYS_sigaltstack, NULL, &os);
    printf("autodisarm_flags=%u\n", (unsigned)os.flags);
    ss.flags = SS_DISABLE; ss.size = 1;
    P("altstack_disable", syscall(SYS_sigaltstack, &ss, NULL));
    syscall(SYS_sigaltstack, NULL, &os);
    printf("disabled_sp=%lu\ndisabled_flags=%d\ndisabled_size=%lu\n", (unsigned long)os.sp, os.flags,
           (unsigned long)os.size);
    P("altstack_baduss", syscall(SYS_sigaltstack, (void *)8, NULL));
    P("altstack_baduoss", syscall(SYS_sigaltstack, NULL, (void *)8));
    P("kill_badsig", syscall(SYS_kill, getpid(), 65));
    P("kill_nopid_badsig", syscall(SYS_kill, 4000000, 65));
    P("kill_nopid", syscall(SYS_kill, 4000000, 0));
    P("kill_self_0", syscall(SYS_kill, getpid(), 0));
    P("kill_intmin", syscall(SYS_kill, -2147483648L, 0));
    P("tgkill_zero", syscall(SYS_tgkill, 0, getpid(), 0));
    P("tgkill_wrong_group", syscall(SYS_tgkill, getpid() + 1, getpid(), 0));
    P("tgkill_notid", syscall(SYS_tgkill, getpid(), 4000000, 0));
    P("tgkill_badsig", syscall(SYS_tgkill, getpid(), getpid(), 65));
    P("tkill_neg", syscall(SYS_tkill, -1, 0));
    siginfo_t si; memset(&si, 0, sizeof(si));
    si.si_code = SI_USER;
    P("sigqueue_user_other", syscall(SYS_rt_sigqueueinfo, getppid(), SIGUSR1, &si));
    si.si_code = 1000;
    ((char *)&si)[100] = 1;
    P("sigqueue_unknown_code_junk", syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si));
    P("sigqueue_badinfo", syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, (void *)8));
    struct itimerval it = {{0, 0}, {0, 1000000}};
    P("setitimer_usec", syscall(SYS_setitimer, ITIMER_REAL, &it, NULL));
    it.it_value.tv_usec = -1;
    P("setitimer_negusec", syscall(SYS_setitimer, ITIMER_REAL, &it, NULL));
    it.it_value.tv_usec = 0;
    P("setitimer_which", syscall(SYS_setitimer, 3, &it, NULL));
    P("getitimer_which", syscall(SYS_getitimer, 3, &it));
    P("setitimer_badvalue", syscall(SYS_setitimer, ITIMER_REAL, (void *)8, NULL));
    P("alarm_10", syscall(SYS_alarm, 10));
    P("alarm_0", syscall(SYS_alarm, 0));
    P("rt_sigsuspend_size", syscall(SYS_rt_sigsuspend, &set, 4));
    P("rt_sigsuspend_bad", syscall(SYS_rt_sigsuspend, (void *)8, 8));
    return 0;
}
"""

#: an interrupted read(2) of an empty pipe, with and without SA_RESTART; the handler
#: writes a byte into the pipe, so a restarted read returns 1
RESTART_PROBE = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>
static int fds[2];
static void on_alarm(int sig) { (void)sig; write(fds[1], "x", 1); }
static long try(int flags)
{
    char c;
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
    pipe(fds);
    struct itimerval it = {{0, 0}, {0, 10000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long n = read(fds[0], &c, 1);
    return n < 0 ? -errno : n;
}
int main(void)
{
    printf("[restart]\nwith_sa_restart=%ld\n", try(SA_RESTART));
    printf("without_sa_restart=%ld\n", try(0));
    return 0;
}
"""


#: a periodic ITIMER_REAL whose SIGALRM stays blocked past its first expiry (100 ms, then
#: every 25 ms; 160 ms asleep): the timer is not re-armed until the signal is dequeued
ITIMER_PROBE = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
static void on_alarm(int sig) { (void)sig; }
static long usec(struct timeval tv) { return tv.tv_sec * 1000000 + tv.tv_usec; }
int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGALRM);
    sigprocmask(SIG_BLOCK, &m, NULL);
    struct itimerval it = {{0, 25000}, {0, 100000}}, now;
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec ts = {0, 160000000};
    nanosleep(&ts, NULL);
    getitimer(ITIMER_REAL, &now);
    printf("[itimer]\npending_value=%ld\npending_interval=%ld\n", usec(now.it_value), usec(now.it_interval));
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    getitimer(ITIMER_REAL, &now);
    printf("rearmed_value=%ld\n", usec(now.it_value));
    return 0;
}
"""


def run_probe(tmp_path_factory: pytest.TempPathFactory, name: str, source: str) -> dict[str, dict[str, int]]:
    """Build and run a probe; its output as {section: {key: value}} ("[section]" lines
    open a section, then whitespace-separated key=value integers)."""
    d = tmp_path_factory.mktemp(name)
    (d / f"{name}.c").write_text(source)
    built = subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-o", str(d / name),
                            str(d / f"{name}.c")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(d / name)], check=True, capture_output=True, text=True, cwd=d).stdout
    sections: dict[str, dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        for token in line.split():
            key, value = token.split("=")
            current[key] = int(value, 0)
    return sections


@pytest.fixture(scope="module")
def native_frames(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("the native probes need gcc")
    return run_probe(tmp_path_factory, "frame", FRAME_PROBE)


@pytest.fixture(scope="module")
def native_errno(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("the native probes need gcc")
    return run_probe(tmp_path_factory, "errno", ERRNO_PROBE)["errno"]


def host_xstate(native_frames) -> xsig.XstateConfig:
    """This machine's XSAVE frame, as its kernel reported it in the software bytes."""
    raise_ = native_frames["raise"]
    xfeatures = raise_["xfeatures"]
    pkru = native_frames["cpu"]["pkru_offset"] if xfeatures & 1 << 9 else 0
    return xsig.XstateConfig(True, raise_["xstate_size"], xfeatures, pkru)


# --- the model side -------------------------------------------------------------------

class Machine:
    """A process of the model with one thread, a [stack], and a scratch page where the
    test puts the structs it passes to syscalls."""

    def __init__(self, **kernel_args) -> None:
        self.kernel = vmsim.Kernel(**kernel_args)
        self.process = self.kernel.spawn(stack=True)
        self.thread = Thread(self.process, self.process.pid, PtRegs(rsp=self.kernel.task_size - 0x800))
        self.scratch = self.process.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS)

    def u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.process.read(addr, 8))[0]

    def i32(self, addr: int) -> int:
        return struct.unpack("<i", self.process.read(addr, 4))[0]

    def sigaction(self, sig: int, handler: int = HANDLER, flags: int = SA_SIGINFO | SA_RESTORER,
                  mask: int = 0) -> None:
        self.process.write(self.scratch, SigAction(handler, flags, RESTORER, mask).pack())
        assert ksig.sys_rt_sigaction(self.thread, sig, self.scratch, 0, 8) == 0

    def in_syscall(self, nr: int, result: int) -> None:
        """The thread is returning from syscall nr with result (a -errno as the kernel)."""
        self.thread.regs.rip, self.thread.regs.orig_rax = SYSCALL_RIP, nr
        self.thread.regs.rax = result & U64

    def deliver(self, xstate: xsig.XstateConfig = xsig.EMULATED_XSTATE) -> None:
        xsig.exit_to_user_mode_loop(self.thread, xstate)

    def frame_facts(self, entry_sp: int) -> dict[str, int]:
        """What the native probe's handler prints, read from the model's frame."""
        regs, read = self.thread.regs, self.process.read
        uc, info = regs.rdx, regs.rsi
        mc = uc + 40
        fp = self.u64(mc + 184)
        isp = self.u64(mc + 120)
        sw = struct.unpack("<IIQI", read(fp + 464, 20))
        return {
            "sig": regs.rdi, "info_minus_sp": info - entry_sp, "uc_minus_sp": uc - entry_sp,
            "sp_mod16": entry_sp % 16, "fpstate_minus_sp": fp - entry_sp, "fpstate_mod64": fp % 64,
            "interrupted_sp_minus_sp": isp - entry_sp, "interrupted_sp_mod64": isp % 64,
            "uc_flags": self.u64(uc), "uc_link": self.u64(uc + 8), "ss_sp": self.u64(uc + 16),
            "ss_flags": self.i32(uc + 24), "ss_size": self.u64(uc + 32),
            "uc_sigmask": self.u64(uc + 296), "oldmask": self.u64(mc + 168),
            "blocked_in_handler": self.thread.sigmask,
            "si_signo": self.i32(info), "si_errno": self.i32(info + 4), "si_code": self.i32(info + 8),
            "trapno": self.u64(mc + 160), "err": self.u64(mc + 152), "csgsfs": self.u64(mc + 144),
            "magic1": sw[0], "extended_size": sw[1], "xfeatures": sw[2], "xstate_size": sw[3],
            "frame_mxcsr": struct.unpack("<I", read(fp + 24, 4))[0],
            "frame_fcw": struct.unpack("<H", read(fp, 2))[0],
            "handler_mxcsr": struct.unpack_from("<I", regs.fxsave, 24)[0],
        }


def with_mxcsr(image: bytes, mxcsr: int) -> bytes:
    return image[:24] + struct.pack("<I", mxcsr) + image[28:]


def raise_in_model(m: Machine, sig: int, entry_mod64: int) -> None:
    """glibc's raise(): tgkill with every signal blocked, the signal delivered when
    rt_sigprocmask puts the mask back; the interrupted sp as native's (mod 64)."""
    t = m.thread
    t.regs.rsp = (t.regs.rsp & ~63) + entry_mod64
    t.regs.fxsave = with_mxcsr(xsig.init_fxsave(t.regs.fxsave), 0x1FA0)
    assert ksig.sys_tgkill(t, m.process.pid, t.tid, sig) == 0
    m.in_syscall(NR_RT_SIGPROCMASK, 0)


FRAME_KEYS = ("sig", "info_minus_sp", "uc_minus_sp", "sp_mod16", "fpstate_minus_sp", "fpstate_mod64",
              "interrupted_sp_minus_sp", "uc_flags", "uc_link", "ss_flags", "ss_size",
              "uc_sigmask", "oldmask", "blocked_in_handler", "si_signo", "si_errno", "si_code",
              "trapno", "err", "csgsfs", "magic1", "extended_size", "xfeatures", "xstate_size",
              "frame_mxcsr", "frame_fcw", "handler_mxcsr")


def model_like_probe(native_frames) -> tuple[Machine, xsig.XstateConfig]:
    """The probe's setup in the model: SIGUSR1 and SIGSEGV handlers with SIGUSR2 in
    sa_mask, SIGTERM blocked."""
    m = Machine()
    m.sigaction(SIGUSR1, mask=sigmask(SIGUSR2))
    m.sigaction(SIGSEGV, mask=sigmask(SIGUSR2))
    m.thread.sigmask = sigmask(SIGTERM)
    m.altstack = m.process.mmap(0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    m.process.write(m.scratch, struct.pack("<Qi4xQ", m.altstack, 0, 16 * PAGE_SIZE))
    assert ksig.sys_sigaltstack(m.thread, m.scratch, 0) == 0
    return m, host_xstate(native_frames)


def handler_returns(m: Machine, xstate: xsig.XstateConfig) -> None:
    """The handler's ret pops pretcode, the restorer calls rt_sigreturn."""
    m.thread.regs.rsp += 8
    m.thread.regs.orig_rax = 15
    m.thread.regs.rax = xsig.sys_rt_sigreturn(m.thread, xstate)


@needs_gcc
def test_raise_frame_is_laid_out_as_the_kernel_does(native_frames):
    native = native_frames["raise"]
    m, host = model_like_probe(native_frames)
    raise_in_model(m, SIGUSR1, native["interrupted_sp_mod64"])
    m.deliver(host)
    model = m.frame_facts(m.thread.regs.rsp)
    assert {k: model[k] for k in FRAME_KEYS} == {k: native[k] for k in FRAME_KEYS}
    assert model["ss_sp"] == m.altstack
    assert native["si_pid_is_self"] == 1 and native["si_code"] == SI_TKILL
    assert m.i32(m.thread.regs.rsi + 16) == m.process.pid
    assert m.thread.regs.rip == HANDLER and m.u64(m.thread.regs.rsp) == RESTORER
    assert m.thread.regs.rax == 0 and m.thread.regs.rdi == SIGUSR1


@needs_gcc
def test_fxsave_only_frame_of_the_emulated_cpu(native_frames):
    """The emulated CPU has no XSAVE: the same frame with a 512-byte FXSAVE image, the
    software bytes announcing it (MAGIC1, no MAGIC2), uc_flags without UC_FP_XSTATE."""
    native = native_frames["raise"]
    m, _ = model_like_probe(native_frames)
    raise_in_model(m, SIGUSR1, native["interrupted_sp_mod64"])
    interrupted = m.thread.regs.rsp
    m.deliver()
    sp = m.thread.regs.rsp
    model = m.frame_facts(sp)
    same = ("info_minus_sp", "uc_minus_sp", "sp_mod16", "fpstate_minus_sp", "fpstate_mod64",
            "uc_sigmask", "oldmask", "blocked_in_handler", "si_code", "csgsfs", "magic1",
            "frame_mxcsr", "frame_fcw", "handler_mxcsr")
    assert {k: model[k] for k in same} == {k: native[k] for k in same}
    fpstate = (interrupted - 128 - 512) & ~63
    assert model["fpstate_minus_sp"] + sp == fpstate
    assert model["uc_flags"] == xsig.UC_SIGCONTEXT_SS | xsig.UC_STRICT_RESTORE_SS
    assert (model["extended_size"], model["xfeatures"], model["xstate_size"]) == (516, 0, 512)
    assert m.process.read(fpstate + 512, 4) == bytes(4)         # no FP_XSTATE_MAGIC2


@needs_gcc
def test_segv_of_a_write_to_a_read_only_page(native_frames):
    native = native_frames["segv"]
    m, host = model_like_probe(native_frames)
    raise_in_model(m, SIGUSR1, native_frames["raise"]["interrupted_sp_mod64"])
    m.deliver(host)
    handler_returns(m, host)
    assert m.thread.regs.rip == SYSCALL_RIP and m.thread.sigmask == sigmask(SIGTERM)
    page = m.process.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    with pytest.raises(Fault) as fault:
        m.process.write(page + 16, b"\1")
    m.thread.regs.orig_rax = xsig.NO_SYSCALL
    xsig.bad_area(m.thread, fault.value, xsig.X86_PF_WRITE)
    m.deliver(host)
    model = m.frame_facts(m.thread.regs.rsp)
    for key in ("sig", "si_signo", "si_code", "trapno", "err", "uc_flags", "uc_sigmask"):
        assert model[key] == native[key], key
    assert m.u64(m.thread.regs.rsi + 16) - page == native["si_addr_minus_page"] == 16
    assert m.u64(m.thread.regs.rdx + 40 + 176) - page == native["cr2_minus_page"]
    # the next signal's frame still reports that fault (thread.trap_nr, error_code, cr2)
    stale = native_frames["stale"]
    handler_returns(m, host)
    raise_in_model(m, SIGUSR1, 0)
    m.deliver(host)
    model = m.frame_facts(m.thread.regs.rsp)
    assert (model["trapno"], model["err"]) == (stale["trapno"], stale["err"])
    assert m.u64(m.thread.regs.rdx + 40 + 176) - page == stale["cr2_minus_page"]


@needs_gcc
def test_frame_on_the_alternate_stack(native_frames):
    native = native_frames["altstack"]
    m, host = model_like_probe(native_frames)
    alt = m.altstack
    m.sigaction(SIGUSR2, flags=SA_SIGINFO | SA_ONSTACK | SA_RESTORER)
    raise_in_model(m, SIGUSR2, native["interrupted_sp_mod64"])
    m.deliver(host)
    sp = m.thread.regs.rsp
    model = m.frame_facts(sp)
    assert alt + 16 * PAGE_SIZE - sp == native["alt_top_minus_sp"]
    assert (model["ss_sp"], model["ss_flags"], model["ss_size"]) == \
        (alt, native["ss_flags"], native["ss_size"])
    assert model["fpstate_minus_sp"] == native["fpstate_minus_sp"]
    # in the handler, sigaltstack() reports SS_ONSTACK and refuses a change (EPERM)
    assert ksig.sys_sigaltstack(m.thread, 0, m.scratch + 64) == 0
    assert m.i32(m.scratch + 64 + 8) == native["query_flags"] == SS_ONSTACK
    with pytest.raises(OSError) as err:
        ksig.sys_sigaltstack(m.thread, m.scratch, 0)
    assert -err.value.errno == native["set_while_on_it"]


# --- errno of the signal syscalls ------------------------------------------------------

def model_errno(m: Machine) -> dict[str, int]:
    """The ERRNO_PROBE's calls, made on the model in the same order."""
    t, p, s = m.thread, m.process, m.scratch
    act, old, buf = s, s + 64, s + 128
    out: dict[str, int] = {}

    def call(name: str, fn, *args) -> None:
        try:
            out[name] = fn(t, *args)
        except OSError as e:
            out[name] = -e.errno

    p.write(act, SigAction(0x1234, SA_RESTORER, 0x5678, 0).pack())
    call("sigaction_kill", ksig.sys_rt_sigaction, SIGKILL, act, 0, 8)
    call("sigaction_stop_query", ksig.sys_rt_sigaction, 19, 0, old, 8)
    call("sigaction_0", ksig.sys_rt_sigaction, 0, 0, old, 8)
    call("sigaction_65", ksig.sys_rt_sigaction, 65, 0, old, 8)
    call("sigaction_64", ksig.sys_rt_sigaction, 64, 0, old, 8)
    call("sigaction_size4", ksig.sys_rt_sigaction, SIGUSR1, act, 0, 4)
    call("sigaction_badact", ksig.sys_rt_sigaction, SIGUSR1, 8, 0, 8)
    call("sigaction_badoact", ksig.sys_rt_sigaction, SIGUSR1, act, 8, 8)
    ksig.sys_rt_sigaction(t, SIGUSR1, 0, old, 8)
    out["after_badoact_handler"] = m.u64(old)
    p.write(act, SigAction(0x1234, U64, 0x5678, U64).pack())
    call("sigaction_allflags", ksig.sys_rt_sigaction, SIGUSR2, act, 0, 8)
    ksig.sys_rt_sigaction(t, SIGUSR2, 0, old, 8)
    out["stored_flags"], out["stored_mask"] = m.u64(old + 8), m.u64(old + 24)
    call("procmask_badhow_noset", ksig.sys_rt_sigprocmask, 99, 0, old, 8)
    p.write(buf, struct.pack("<Q", 1))
    call("procmask_badhow", ksig.sys_rt_sigprocmask, 99, buf, 0, 8)
    call("procmask_size4", ksig.sys_rt_sigprocmask, 0, buf, 0, 4)
    call("procmask_badset", ksig.sys_rt_sigprocmask, 0, 8, 0, 8)
    p.write(buf, struct.pack("<Q", U64))
    call("procmask_all", ksig.sys_rt_sigprocmask, 2, buf, 0, 8)
    ksig.sys_rt_sigprocmask(t, 0, 0, old, 8)
    out["blocked_all"] = m.u64(old)
    call("procmask_badoset", ksig.sys_rt_sigprocmask, 0, 0, 8, 8)
    call("sigpending_16", ksig.sys_rt_sigpending, buf, 16)
    call("sigpending_4", ksig.sys_rt_sigpending, buf, 4)
    call("sigpending_bad", ksig.sys_rt_sigpending, 8, 8)
    alt = s + 2 * PAGE_SIZE

    def stack_t(flags: int, size: int) -> int:
        p.write(buf, struct.pack("<Qi4xQ", alt, flags, size))
        return buf

    call("altstack_small", ksig.sys_sigaltstack, stack_t(0, 2047), 0)
    call("altstack_badflags", ksig.sys_sigaltstack, stack_t(5, 8192), 0)
    p.write(old, b"\xff" * 24)
    call("altstack_query0", ksig.sys_sigaltstack, 0, old)
    out["initial_sp"], out["initial_flags"] = m.u64(old), m.i32(old + 8)
    out["initial_pad"], out["initial_size"] = m.i32(old + 12), m.u64(old + 16)
    call("altstack_onstack_flag", ksig.sys_sigaltstack, stack_t(SS_ONSTACK, 8192), 0)
    ksig.sys_sigaltstack(t, 0, old)
    out["set_flags"], out["set_size"] = m.i32(old + 8), m.u64(old + 16)
    call("altstack_autodisarm", ksig.sys_sigaltstack, stack_t(-(1 << 31), 8192), 0)
    ksig.sys_sigaltstack(t, 0, old)
    out["autodisarm_flags"] = m.i32(old + 8) & 0xFFFFFFFF
    call("altstack_disable", ksig.sys_sigaltstack, stack_t(SS_DISABLE, 1), 0)
    ksig.sys_sigaltstack(t, 0, old)
    out["disabled_sp"], out["disabled_flags"] = m.u64(old), m.i32(old + 8)
    out["disabled_size"] = m.u64(old + 16)
    call("altstack_baduss", ksig.sys_sigaltstack, 8, 0)
    call("altstack_baduoss", ksig.sys_sigaltstack, 0, 8)
    pid = p.pid
    call("kill_badsig", ksig.sys_kill, pid, 65)
    call("kill_nopid_badsig", ksig.sys_kill, 4000000, 65)
    call("kill_nopid", ksig.sys_kill, 4000000, 0)
    call("kill_self_0", ksig.sys_kill, pid, 0)
    call("kill_intmin", ksig.sys_kill, -(1 << 31) & U64, 0)
    call("tgkill_zero", ksig.sys_tgkill, 0, pid, 0)
    call("tgkill_wrong_group", ksig.sys_tgkill, pid + 1, pid, 0)
    call("tgkill_notid", ksig.sys_tgkill, pid, 4000000, 0)
    call("tgkill_badsig", ksig.sys_tgkill, pid, pid, 65)
    call("tkill_neg", ksig.sys_tkill, U64, 0)
    parent = m.kernel.spawn()
    info = bytearray(128)
    p.write(buf, bytes(info))
    call("sigqueue_user_other", ksig.sys_rt_sigqueueinfo, parent.pid, SIGUSR1, buf)
    struct.pack_into("<i", info, 8, 1000)
    info[100] = 1
    p.write(buf, bytes(info))
    call("sigqueue_unknown_code_junk", ksig.sys_rt_sigqueueinfo, pid, SIGUSR1, buf)
    call("sigqueue_badinfo", ksig.sys_rt_sigqueueinfo, pid, SIGUSR1, 8)
    p.write(buf, struct.pack("<qqqq", 0, 0, 0, 1000000))
    call("setitimer_usec", ksig.sys_setitimer, 0, buf, 0)
    p.write(buf, struct.pack("<qqqq", 0, 0, 0, -1))
    call("setitimer_negusec", ksig.sys_setitimer, 0, buf, 0)
    p.write(buf, struct.pack("<qqqq", 0, 0, 0, 0))
    call("setitimer_which", ksig.sys_setitimer, 3, buf, 0)
    call("getitimer_which", ksig.sys_getitimer, 3, buf)
    call("setitimer_badvalue", ksig.sys_setitimer, 0, 8, 0)
    call("alarm_10", ksig.sys_alarm, 10)
    call("alarm_0", ksig.sys_alarm, 0)
    call("rt_sigsuspend_size", ksig.sys_rt_sigsuspend, buf, 4)
    call("rt_sigsuspend_bad", ksig.sys_rt_sigsuspend, 8, 8)
    return out


@needs_gcc
def test_signal_syscalls_fail_as_the_kernel_does(native_errno):
    m = Machine()
    assert model_errno(m) == native_errno


# --- delivery, restart, return -------------------------------------------------------

@needs_gcc
def test_interrupted_read_is_restarted_only_with_sa_restart(tmp_path_factory):
    native = run_probe(tmp_path_factory, "restart", RESTART_PROBE)["restart"]
    assert (native["with_sa_restart"], native["without_sa_restart"]) == (1, -4)
    for flags, native_value in ((SA_RESTART, native["with_sa_restart"]), (0, native["without_sa_restart"])):
        m = Machine()
        m.sigaction(SIGALRM, flags=SA_RESTORER | flags)
        m.in_syscall(NR_READ, -ERESTARTSYS)
        ksig.group_send_sig_info(SIGALRM, ksig.kill_info(SIGALRM, SI_KERNEL, 0, 0), m.process, None)
        m.deliver()
        saved = m.thread.regs.rdx + 40
        if native_value == -4:
            assert m.u64(saved + 104) == -4 & U64 and m.u64(saved + 128) == SYSCALL_RIP
        else:       # made again: rip back on SYSCALL, rax the syscall number
            assert m.u64(saved + 104) == NR_READ and m.u64(saved + 128) == SYSCALL_RIP - 2


@pytest.mark.parametrize("error, flags, rax, rip", [
    (ERESTARTSYS, 0, -4, SYSCALL_RIP),
    (ERESTARTSYS, SA_RESTART, NR_PAUSE, SYSCALL_RIP - 2),
    (ERESTARTNOINTR, 0, NR_PAUSE, SYSCALL_RIP - 2),
    (ERESTARTNOHAND, SA_RESTART, -4, SYSCALL_RIP),
    (ERESTART_RESTARTBLOCK, SA_RESTART, -4, SYSCALL_RIP),
])
def test_handle_signal_restart_rules(error, flags, rax, rip):
    m = Machine()
    m.sigaction(SIGUSR1, flags=SA_RESTORER | flags)
    m.in_syscall(NR_PAUSE, -error)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    m.deliver()
    saved = m.thread.regs.rdx + 40
    assert (m.u64(saved + 104), m.u64(saved + 128)) == (rax & U64, rip)


@pytest.mark.parametrize("error, rax, rip", [
    (ERESTARTSYS, NR_NANOSLEEP, SYSCALL_RIP - 2),
    (ERESTARTNOHAND, NR_NANOSLEEP, SYSCALL_RIP - 2),
    (ERESTART_RESTARTBLOCK, xsig.NR_RESTART_SYSCALL, SYSCALL_RIP - 2),
    (4, -4 & U64, SYSCALL_RIP),         # -EINTR itself is left alone
])
def test_ignored_signal_restarts_the_call(error, rax, rip):
    m = Machine()
    m.in_syscall(NR_NANOSLEEP, -error)
    m.thread.sigmask = sigmask(SIGCHLD)             # blocked: queued although ignored
    ksig.sys_tkill(m.thread, m.thread.tid, SIGCHLD)
    ksig.set_current_blocked(m.thread, 0)
    m.deliver()
    assert (m.thread.regs.rax, m.thread.regs.rip) == (rax, rip)
    assert not m.thread.sigpending


def test_rt_sigreturn_restores_registers_mask_and_fpu():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1, mask=sigmask(SIGUSR2))
    t.sigmask = sigmask(SIGTERM)
    before = PtRegs(**{name: 0x1000 + i for i, name in enumerate(xsig.SC_REGS)})
    before.rsp, before.rip, before.eflags = t.regs.rsp, SYSCALL_RIP, 0x246 | xsig.X86_EFLAGS_DF
    before.orig_rax = NR_RT_SIGPROCMASK
    before.fxsave = with_mxcsr(xsig.init_fxsave(bytes(512)), 0x1FA0)[:160] + bytes(range(256)) + bytes(96)
    t.regs = before.copy()
    ksig.sys_tkill(t, t.tid, SIGUSR1)
    m.deliver()
    assert t.regs.eflags & xsig.X86_EFLAGS_DF == 0
    assert t.sigmask == sigmask(SIGTERM) | sigmask(SIGUSR1) | sigmask(SIGUSR2)
    assert t.regs.fxsave == xsig.init_fxsave(before.fxsave)
    t.regs.rsp += 8                     # the handler's ret popped pretcode into rip
    t.regs.orig_rax = 15
    result = xsig.sys_rt_sigreturn(t)
    assert result == before.rax
    after = t.regs
    assert [getattr(after, n) for n in xsig.SC_REGS] == [getattr(before, n) for n in xsig.SC_REGS]
    assert (after.eflags, after.orig_rax, after.fxsave) == (before.eflags, U64, before.fxsave)
    assert t.sigmask == sigmask(SIGTERM)


def test_rt_sigreturn_of_a_bad_frame_is_sigsegv():
    m = Machine()
    m.thread.regs.rsp = 0x1000          # nothing mapped there
    assert xsig.sys_rt_sigreturn(m.thread) == 0
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == SIGSEGV


def test_rt_sigreturn_refuses_a_bad_mxcsr():
    m = Machine()
    m.sigaction(SIGUSR1)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    m.deliver()
    fp = m.u64(m.thread.regs.rdx + 40 + 184)
    m.process.write(fp + 24, struct.pack("<I", 0x10000))       # a reserved MXCSR bit
    m.thread.regs.rsp += 8
    xsig.sys_rt_sigreturn(m.thread)
    assert m.thread.pending.signal & sigmask(SIGSEGV)


def test_frame_that_cannot_be_written_is_sigsegv_then_fatal():
    """No room for the frame (the stack pointer in unmapped memory): SIGSEGV; its own
    frame cannot be written either, so it kills (force_sigsegv() of SIGSEGV)."""
    m = Machine()
    m.sigaction(SIGUSR1)
    m.sigaction(SIGSEGV)
    m.thread.regs.rsp = 0x10000
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == SIGSEGV


def test_handler_without_sa_restorer_is_sigsegv():
    m = Machine()
    m.sigaction(SIGUSR1, flags=SA_SIGINFO)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == SIGSEGV


def test_sa_resethand_and_sa_nodefer():
    m = Machine()
    m.sigaction(SIGUSR1, flags=SA_SIGINFO | SA_RESTORER | SA_RESETHAND | SA_NODEFER)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    m.deliver()
    assert m.thread.regs.rip == HANDLER
    assert not m.thread.sigmask & sigmask(SIGUSR1)
    assert m.process.signal.sighand.action[SIGUSR1 - 1].handler == 0
    assert m.process.signal.sighand.action[SIGUSR1 - 1].flags & SA_RESETHAND


def test_autodisarm_alternate_stack_is_reset_by_delivery():
    m = Machine()
    alt = m.process.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    m.process.write(m.scratch + 512, struct.pack("<Qi4xQ", alt, SS_AUTODISARM - (1 << 32), 4 * PAGE_SIZE))
    ksig.sys_sigaltstack(m.thread, m.scratch + 512, 0)
    m.sigaction(SIGUSR1, flags=SA_SIGINFO | SA_RESTORER | SA_ONSTACK)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    m.deliver()
    assert alt < m.thread.regs.rsp < alt + 4 * PAGE_SIZE
    assert (m.thread.sas_ss_sp, m.thread.sas_ss_size, m.thread.sas_ss_flags) == (0, 0, SS_DISABLE)
    uc = m.thread.regs.rdx
    assert (m.u64(uc + 16), m.u64(uc + 32)) == (alt, 4 * PAGE_SIZE)     # the frame keeps it
    m.thread.regs.rsp += 8
    xsig.sys_rt_sigreturn(m.thread)
    assert (m.thread.sas_ss_sp, m.thread.sas_ss_size, m.thread.sas_ss_flags) == \
        (alt, 4 * PAGE_SIZE, SS_AUTODISARM)


# --- sending, pending, default actions ---------------------------------------------------

def test_blocked_signal_waits_until_unblocked():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1)
    t.sigmask = sigmask(SIGUSR1)
    ksig.sys_kill(t, m.process.pid, SIGUSR1)
    m.deliver()
    assert t.regs.rip == 0 and t.process.signal.shared_pending.signal == sigmask(SIGUSR1)
    ksig.sys_rt_sigpending(t, m.scratch, 8)
    assert m.u64(m.scratch) == sigmask(SIGUSR1)
    m.process.write(m.scratch, struct.pack("<Q", sigmask(SIGUSR1)))
    ksig.sys_rt_sigprocmask(t, 1, m.scratch, 0, 8)
    assert ksig.signal_pending(t)
    m.deliver()
    assert t.regs.rip == HANDLER
    info = t.regs.rsi
    assert (m.i32(info + 8), m.i32(info + 16)) == (0, m.process.pid)     # SI_USER from itself


def test_legacy_signals_are_not_queued_twice_real_time_ones_are():
    m = Machine()
    t = m.thread
    t.sigmask = ksig.SIGSET_ALL
    for _ in range(2):
        ksig.sys_tkill(t, t.tid, SIGUSR1)
        ksig.sys_tkill(t, t.tid, 40)
    assert [q.signo for q in t.pending.queue] == [SIGUSR1, 40, 40]


def test_fault_signal_is_dequeued_before_lower_numbered_ones():
    m = Machine()
    t = m.thread
    for sig in (SIGUSR1, pysignal.SIGILL, SIGSEGV):
        m.sigaction(sig)
    t.sigmask = sigmask(SIGUSR1) | sigmask(pysignal.SIGILL)
    ksig.sys_tkill(t, t.tid, SIGUSR1)
    ksig.sys_tkill(t, t.tid, pysignal.SIGILL)       # a tkill()'d SIGILL is not a fault's
    ksig.set_current_blocked(t, 0)
    ksig.force_sig_fault(t, SIGSEGV, 2, 0x1234)
    first = ksig.get_signal(t)
    assert first is not None and (first.sig, first.info.code, first.info.addr) == (SIGSEGV, 2, 0x1234)


@pytest.mark.parametrize("sig, core_limit, status", [
    (SIGTERM, 0, SIGTERM), (SIGSEGV, 0, SIGSEGV), (SIGSEGV, 4095, SIGSEGV),
    (SIGSEGV, PAGE_SIZE, SIGSEGV | 0x80), (pysignal.SIGQUIT, 1 << 20, pysignal.SIGQUIT | 0x80),
    (SIGKILL, 1 << 20, SIGKILL), (40, 1 << 20, 40),
])
def test_default_action_wait_status(sig, core_limit, status):
    m = Machine()
    m.process.setrlimit(RLIMIT_CORE, core_limit)
    ksig.sys_kill(m.thread, m.process.pid, sig)
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == status


@pytest.mark.skipif(open("/proc/sys/kernel/core_pattern").read().startswith("|"),
                    reason="a piped core_pattern dumps whatever RLIMIT_CORE says")
@pytest.mark.parametrize("core_limit", [0, 4095, PAGE_SIZE])
def test_core_dump_flag_follows_rlimit_core_as_natively(tmp_path, core_limit):
    pid = os.fork()
    if pid == 0:            # a fresh interpreter: no fault handler of pytest's in the way
        os.chdir(tmp_path)
        resource.setrlimit(resource.RLIMIT_CORE, (core_limit, resource.RLIM_INFINITY))
        os.execv(sys.executable, [sys.executable, "-c", "import os; os.kill(os.getpid(), 11)"])
    _, native = os.waitpid(pid, 0)
    m = Machine()
    m.process.setrlimit(RLIMIT_CORE, core_limit)
    ksig.force_sig_fault(m.thread, SIGSEGV, 1, 0)
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == native


def test_default_ignored_signals_and_stop_signals_do_nothing():
    m = Machine()
    for sig in (SIGCHLD, 28, 23, pysignal.SIGTSTP, pysignal.SIGCONT):
        ksig.sys_kill(m.thread, m.process.pid, sig)
    m.deliver()
    assert not m.thread.sigpending and m.thread.regs.rip == 0


def test_blocked_or_ignored_fault_signal_kills():
    """force_sig_fault(): SIGSEGV blocked (or SIG_IGN) becomes unblocked SIG_DFL: fatal."""
    m = Machine()
    m.sigaction(SIGSEGV)
    m.thread.sigmask = sigmask(SIGSEGV)
    ksig.force_sig_fault(m.thread, SIGSEGV, 1, 0)
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == SIGSEGV


def test_sig_ign_discards_pending_signal():
    m = Machine()
    m.thread.sigmask = sigmask(SIGUSR1)
    ksig.sys_kill(m.thread, m.process.pid, SIGUSR1)
    ksig.sys_tkill(m.thread, m.thread.tid, SIGUSR1)
    m.sigaction(SIGUSR1, handler=SIG_IGN)
    assert m.thread.pending.signal == m.process.signal.shared_pending.signal == 0


def test_group_signal_goes_to_a_thread_that_does_not_block_it():
    m = Machine()
    leader = m.thread
    other = Thread(m.process, 4242, PtRegs(rsp=leader.regs.rsp - 0x10000))
    m.sigaction(SIGUSR1)
    leader.sigmask = sigmask(SIGUSR1)
    ksig.sys_kill(leader, m.process.pid, SIGUSR1)
    assert other.sigpending and not leader.sigpending
    xsig.exit_to_user_mode_loop(other)
    assert other.regs.rip == HANDLER


def test_fatal_group_signal_reaches_every_thread():
    m = Machine()
    other = Thread(m.process, 4242, PtRegs(rsp=m.thread.regs.rsp - 0x10000))
    sender = vmsim.Kernel.spawn(m.kernel)
    sender_thread = Thread(sender, sender.pid)
    ksig.sys_kill(sender_thread, m.process.pid, SIGTERM)
    assert all(t.pending.signal & sigmask(SIGKILL) for t in (m.thread, other))
    for t in (m.thread, other):
        with pytest.raises(GroupExit) as end:
            xsig.exit_to_user_mode_loop(t)
        assert end.value.status == SIGTERM


def test_tgkill_reaches_that_thread_alone():
    m = Machine()
    other = Thread(m.process, 4242, PtRegs(rsp=m.thread.regs.rsp - 0x10000))
    m.sigaction(SIGUSR1)
    ksig.sys_tgkill(m.thread, m.process.pid, other.tid, SIGUSR1)
    assert other.pending.signal == sigmask(SIGUSR1) and not m.thread.pending.signal


def test_rt_sigqueueinfo_delivers_the_siginfo_byte_for_byte():
    m = Machine()
    m.sigaction(40)
    info = bytearray(128)
    struct.pack_into("<iii4xiiQ", info, 0, 99, 7, SI_QUEUE, 1234, 5678, 0xDEADBEEF)
    m.process.write(m.scratch + 256, bytes(info))
    assert ksig.sys_rt_sigqueueinfo(m.thread, m.process.pid, 40, m.scratch + 256) == 0
    m.deliver()
    struct.pack_into("<i", info, 0, 40)         # si_signo is the signal sent
    assert m.process.read(m.thread.regs.rsi, 128) == bytes(info)


def test_pkey_fault_reports_si_pkey():
    m = Machine(pkeys=True)
    page = m.process.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    pkey = m.process.pkey_alloc(0, 1)                   # PKEY_DISABLE_ACCESS
    m.process.pkey_mprotect(page, PAGE_SIZE, PROT_READ | PROT_WRITE, pkey)
    with pytest.raises(Fault) as fault:
        m.process.read(page, 1)
    assert fault.value.code == "SEGV_PKUERR"
    m.sigaction(SIGSEGV)
    xsig.bad_area(m.thread, fault.value, xsig.X86_PF_PK)
    m.deliver()
    info = m.thread.regs.rsi
    assert (m.i32(info + 8), m.u64(info + 16), m.i32(info + 0x20)) == (SEGV_PKUERR, page, pkey)
    assert m.u64(m.thread.regs.rdx + 40 + 152) == xsig.X86_PF_PK | xsig.X86_PF_USER


# --- sleeping ---------------------------------------------------------------------------

def test_sigsuspend_sleeps_then_the_frame_saves_the_old_mask():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1)
    t.sigmask = sigmask(SIGUSR1) | sigmask(SIGTERM)
    m.process.write(m.scratch, struct.pack("<Q", sigmask(SIGTERM)))
    with pytest.raises(OSError) as err:
        ksig.sys_rt_sigsuspend(t, m.scratch, 8)
    assert err.value.errno == ERESTARTNOHAND
    assert (t.state, t.wait, t.sigmask) == ("blocked", ksig.SIGNAL_WAIT, sigmask(SIGTERM))
    m.in_syscall(130, -ERESTARTNOHAND)
    ksig.sys_kill(vmsim_thread_of(m.kernel.spawn()), m.process.pid, SIGUSR1)
    assert ksig.signal_pending(t)
    t.state, t.wait = "runnable", None                  # the scheduler wakes it
    m.deliver()
    uc = t.regs.rdx
    assert m.u64(uc + 296) == sigmask(SIGUSR1) | sigmask(SIGTERM)      # the mask before
    assert m.u64(uc + 40 + 104) == -4 & U64                             # -EINTR
    assert t.sigmask == sigmask(SIGUSR1) | sigmask(SIGTERM) and not t.restore_sigmask


def test_pause_returns_eintr_after_a_handler_even_with_sa_restart():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1, flags=SA_RESTORER | SA_RESTART)
    with pytest.raises(OSError) as err:
        ksig.sys_pause(t)
    assert err.value.errno == ERESTARTNOHAND and t.state == "blocked"
    m.in_syscall(NR_PAUSE, -ERESTARTNOHAND)
    ksig.sys_tkill(t, t.tid, SIGUSR1)
    t.state, t.wait = "runnable", None
    m.deliver()
    assert m.u64(t.regs.rdx + 40 + 104) == -4 & U64


def vmsim_thread_of(process) -> Thread:
    return Thread(process, process.pid)


# --- ITIMER_REAL ------------------------------------------------------------------------

def test_alarm_sends_sigalrm_when_the_clock_passes_it():
    m = Machine()
    t, clock = m.thread, m.kernel.clock
    start = clock.elapsed
    assert ksig.sys_alarm(t, 3) == 0
    assert ksig.next_timer_expiry(m.process) == start + 3 * 10**9
    clock.elapsed = start + 3 * 10**9 - 1
    ksig.timer_expired(m.process)
    assert not t.sigpending
    clock.elapsed += 1
    ksig.timer_expired(m.process)
    assert m.process.signal.shared_pending.signal == sigmask(SIGALRM)
    assert ksig.next_timer_expiry(m.process) is None
    with pytest.raises(GroupExit) as end:
        m.deliver()
    assert end.value.status == SIGALRM


@needs_gcc
def test_periodic_itimer_is_rearmed_when_its_signal_is_dequeued(tmp_path_factory):
    native = run_probe(tmp_path_factory, "itimer", ITIMER_PROBE)["itimer"]
    m = Machine()
    t, clock = m.thread, m.kernel.clock
    m.sigaction(SIGALRM, flags=SA_RESTORER)
    t.sigmask = sigmask(SIGALRM)
    m.process.write(m.scratch, struct.pack("<qqqq", 0, 25_000, 0, 100_000))
    ksig.sys_setitimer(t, 0, m.scratch, 0)
    clock.elapsed += 160_000_000
    ksig.timer_expired(m.process)
    ksig.sys_getitimer(t, 0, m.scratch + 64)
    _, interval, _, value = struct.unpack("<qqqq", m.process.read(m.scratch + 64, 32))
    assert (value, interval) == (native["pending_value"], native["pending_interval"]) == (0, 25_000)
    ksig.set_current_blocked(t, 0)
    m.deliver()
    ksig.sys_getitimer(t, 0, m.scratch + 64)
    rearmed = struct.unpack("<qqqq", m.process.read(m.scratch + 64, 32))[3]
    assert rearmed == 175_000 - 160_000                 # forwarded past now: 100 + 3 * 25 ms
    assert 0 < native["rearmed_value"] <= 25_000


def test_alarm_returns_the_rounded_seconds_left():
    m = Machine()
    clock = m.kernel.clock
    ksig.sys_alarm(m.thread, 10)
    clock.elapsed += int(8.4e9)
    assert ksig.sys_alarm(m.thread, 10) == 2            # 1.6 s left
    clock.elapsed += int(9.9e9)
    assert ksig.sys_alarm(m.thread, 0) == 1             # 0.1 s left: rounded up


def test_periodic_itimer_rearms_when_sigalrm_is_dequeued():
    m = Machine()
    t, clock = m.thread, m.kernel.clock
    m.sigaction(SIGALRM)
    m.process.write(m.scratch, struct.pack("<qqqq", 0, 250_000, 1, 0))    # 1 s, then every 0.25 s
    ksig.sys_setitimer(t, 0, m.scratch, 0)
    start = clock.elapsed
    clock.elapsed = start + 10**9 + 600_000_000
    ksig.timer_expired(m.process)
    ksig.sys_getitimer(t, 0, m.scratch + 64)
    assert struct.unpack("<qqqq", m.process.read(m.scratch + 64, 32)) == (0, 250_000, 0, 0)
    m.deliver()
    assert t.regs.rip == HANDLER
    assert ksig.next_timer_expiry(m.process) == start + 10**9 + 3 * 250_000_000
    ksig.sys_getitimer(t, 0, m.scratch + 64)
    assert struct.unpack("<qqqq", m.process.read(m.scratch + 64, 32)) == (0, 250_000, 0, 150_000)


# --- fork and exec ---------------------------------------------------------------------

def test_fork_copies_handlers_and_mask_but_not_pending_or_timer():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1)
    t.sigmask = sigmask(SIGUSR2)
    ksig.sys_tkill(t, t.tid, SIGUSR2)
    ksig.sys_alarm(t, 5)
    child_process = m.process.fork()
    child = Thread(child_process, child_process.pid)
    ksig.copy_signals(t, child, clone_flags=SIGCHLD)
    assert child_process.signal.sighand.action[SIGUSR1 - 1].handler == HANDLER
    assert child_process.signal.sighand is not m.process.signal.sighand
    assert (child.sigmask, child.pending.signal) == (sigmask(SIGUSR2), 0)
    assert ksig.next_timer_expiry(child_process) is None
    thread = Thread(m.process, 5000)
    ksig.copy_signals(t, thread, ksig.CLONE_VM | ksig.CLONE_SIGHAND | ksig.CLONE_THREAD)
    assert thread.sas_ss_flags == SS_DISABLE


def test_exec_resets_handlers_but_keeps_ignored_ones_and_the_mask():
    m = Machine()
    t = m.thread
    m.sigaction(SIGUSR1)
    m.sigaction(SIGUSR2, handler=SIG_IGN)
    t.sigmask = sigmask(SIGTERM)
    t.sas_ss_sp, t.sas_ss_size, t.sas_ss_flags = 0x1000, 8192, SS_AUTODISARM
    ksig.exec_signals(t)
    actions = m.process.signal.sighand.action
    assert (actions[SIGUSR1 - 1], actions[SIGUSR2 - 1]) == (SigAction(), SigAction(SIG_IGN))
    assert (t.sigmask, t.sas_ss_sp, t.sas_ss_size, t.sas_ss_flags) == (sigmask(SIGTERM), 0, 0, SS_AUTODISARM)


# --- what the model leaves out (docs/signals.md, "Not modelled") --------------------------

def test_process_groups_are_not_modelled_kill_0_is_the_caller():
    m = Machine()
    m.sigaction(SIGUSR1)
    other = m.kernel.spawn()
    ksig.sys_kill(m.thread, 0, SIGUSR1)
    assert m.process.signal.shared_pending.signal == sigmask(SIGUSR1)
    assert other.signal.shared_pending.signal == 0
    ksig.sys_kill(m.thread, -other.pid & U64, SIGUSR1)
    assert other.signal.shared_pending.signal == sigmask(SIGUSR1)


def test_rlimit_sigpending_is_not_enforced():
    m = Machine()
    m.process.setrlimit(RLIMIT_SIGPENDING, 1)
    m.thread.sigmask = ksig.SIGSET_ALL
    info = bytearray(128)
    struct.pack_into("<i", info, 8, SI_QUEUE)
    m.process.write(m.scratch, bytes(info))
    for _ in range(3):
        assert ksig.sys_rt_sigqueueinfo(m.thread, m.process.pid, 40, m.scratch) == 0
    assert len(m.process.signal.shared_pending.queue) == 3


def test_cpu_time_itimers_are_kept_but_never_expire():
    m = Machine()
    m.process.write(m.scratch, struct.pack("<qqqq", 0, 0, 0, 1000))
    assert ksig.sys_setitimer(m.thread, 1, m.scratch, 0) == 0     # ITIMER_VIRTUAL
    m.kernel.clock.elapsed += 10**9
    ksig.sys_getitimer(m.thread, 1, m.scratch + 64)
    assert struct.unpack("<qqqq", m.process.read(m.scratch + 64, 32)) == (0, 0, 0, 1000)
    assert ksig.next_timer_expiry(m.process) is None and not m.thread.sigpending


# --- a real program on the CPU --------------------------------------------------------

RUN_PROBE = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>
static volatile int got, segv;
static char *page;
static void on_usr1(int sig, siginfo_t *si, void *uc) { (void)uc; got = sig * 100 + si->si_code; }
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)uc;
    segv = si->si_code;
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}
static void on_alrm(int sig) { got = sig; }
int main(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("usr1 %d\n", got);
    sa.sa_sigaction = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[5] = 7;
    printf("segv %d then %d\n", segv, page[5]);
    double x = 1.5;
    for (int i = 0; i < 3; i++) { raise(SIGUSR1); x *= 1.5; }
    printf("fpu %g\n", x);
    signal(SIGALRM, on_alrm);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    pause();
    printf("alarm %d\n", got);
    sigset_t m, p;
    sigemptyset(&m); sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGUSR1);
    sigpending(&p);
    printf("pending %d\n", sigismember(&p, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    fflush(stdout);
    raise(SIGTERM);
    return 0;
}
"""


@needs_gcc
def test_a_program_with_handlers_runs_as_natively(tmp_path):
    """Handlers for raise(), a SIGSEGV that fixes the page and returns, the FPU state
    across handlers, an ITIMER_REAL ending pause(), a blocked signal pending, and a
    fatal SIGTERM: the same output and exit status under `vmsim run`."""
    pytest.importorskip("unicorn")
    (tmp_path / "sig.c").write_text(RUN_PROBE)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "sig"), str(tmp_path / "sig.c")], check=True)
    native = subprocess.run([str(tmp_path / "sig")], capture_output=True, text=True)
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--", str(tmp_path / "sig")],
                           capture_output=True, text=True, timeout=300)
    assert native.returncode == -SIGTERM and native.stdout.startswith("usr1 994\nsegv 2 then 7\n")
    assert (model.stdout, model.returncode) == (native.stdout, 128 + SIGTERM)
