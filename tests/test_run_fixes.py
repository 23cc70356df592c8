"""What the first `vmsim run` left open in signals, traps and the syscall set (issue #11),
each checked against this machine's kernel: small programs of our own, built with gcc
at test time, run natively and on the model (vmsim.run.Machine, or the CLI), their
outputs and exit statuses compared. Times a native run can only approximate are printed
rounded; the model's virtual clock is exact.

What each program checks:
    raxkeep    a fault while user code holds -512..-516 in rax is not a syscall restart
               (orig_rax is -1 outside a syscall)
    errcode    a page fault's error code: PROT only where the PTE was present
    altstack   the alternate stack and the trap info across pthread_create, fork and
               execve (only the stack's address and size go at exec)
    sleeps     restart_syscall(2), nanosleep's remaining time (rem), clock_nanosleep
               absolute and relative, a sleep stopped and continued
    polls      poll, ppoll, select, pselect6: readiness of pipes and files, timeouts,
               signals, the time left, EBADF/EFAULT/EINVAL
    pipesig    SIGPIPE for a write to a pipe without a reader
    rusage     wait4's rusage: ru_maxrss of a child that touched 20 MiB
    robust     robust mutexes of a thread and of a process that die holding them
    sendfile   sendfile(2), copy_file_range(2), fadvise64(2) over files and pipes
"""

from __future__ import annotations

import ast
import os
import re
import select
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from test_run_cpu import run_model, run_native  # noqa: E402

from vmsim import Kernel  # noqa: E402
from vmsim.arch.x86.signal import X86_PF_USER, X86_PF_WRITE  # noqa: E402
from vmsim.arch.x86.traps import page_fault, pte_present  # noqa: E402
from vmsim.errors import Fault  # noqa: E402
from vmsim.fs.stdio import HostStream  # noqa: E402
from vmsim.uapi import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_STRACE = shutil.which("strace") is not None and shutil.which("setarch") is not None

RAXKEEP_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <ucontext.h>
#include <unistd.h>
static int hits;
static void on_ill(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    if (++hits > 8) { printf("looping\n"); fflush(stdout); _exit(3); }
    uc->uc_mcontext.gregs[REG_RIP] += 2;            /* past ud2 */
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_ill; sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGILL, &sa, 0);
    long codes[] = {-512, -513, -514, -516, -4};
    for (int i = 0; i < 5; i++) {
        long rax;
        hits = 0;
        __asm__ volatile("mov %1, %%rax\n\tud2\n" : "=a"(rax) : "r"(codes[i]) : "memory");
        printf("%ld -> %ld\n", codes[i], rax);
    }
    return 0;
}
"""

ERRCODE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
static sigjmp_buf back;
static volatile long err, trapno;
static void on_fault(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    err = uc->uc_mcontext.gregs[REG_ERR];
    trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    siglongjmp(back, sig);
}
#define PROBE(label, stmt) do { int s = sigsetjmp(back, 1); \
    if (!s) { stmt; printf("%s: no fault\n", label); } \
    else printf("%s: sig %d trapno %ld err %ld\n", label, s, trapno, err); } while (0)
typedef void (*fn)(void);
int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    PROBE("write never-touched read-only anon", ro[0] = 1);
    char *rw = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    rw[0] = 1; mprotect(rw, 4096, PROT_READ);
    PROBE("write written then read-only anon", rw[0] = 2);
    mprotect(rw, 4096, PROT_NONE);
    PROBE("read written then PROT_NONE", (void)*(volatile char *)rw);
    PROBE("write written then PROT_NONE", rw[0] = 3);
    char *none = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    PROBE("read never-touched PROT_NONE", (void)*(volatile char *)none);
    int fd = open(argv[0], O_RDONLY);
    char *file = mmap(0, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
    PROBE("write never-touched read-only file page", file[4096 + 5] = 1);
    volatile char c = file[16]; (void)c;
    PROBE("write read read-only file page", file[16] = 1);
    PROBE("write NULL", *(volatile int *)0 = 1);
    PROBE("read NULL", (void)*(volatile int *)0);
    char *code = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    code[0] = 0xc3;
    PROBE("exec written non-exec page", ((fn)code)());
    char *code2 = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    PROBE("exec never-touched non-exec anon page", ((fn)code2)());
    PROBE("exec never-touched PROT_NONE", ((fn)none)());
    PROBE("exec NULL", ((fn)0)());
    char *past = mmap(0, 1 << 20, PROT_READ, MAP_PRIVATE, fd, 0);
    PROBE("read file page past EOF", (void)*(volatile char *)(past + (1 << 20) - 4096));
    return 0;
}
"""

ALTSTACK_C = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>
static char *page;
static void show(const char *who) {
    stack_t ss; sigaltstack(NULL, &ss);
    printf("%s: altstack sp %d size %zu flags %#x\n", who, ss.ss_sp != 0, ss.ss_size, ss.ss_flags);
}
static void on_usr1(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    printf("usr1 trapno %lld err %lld cr2_is_the_fault %d\n", uc->uc_mcontext.gregs[REG_TRAPNO],
           uc->uc_mcontext.gregs[REG_ERR], (char *)uc->uc_mcontext.gregs[REG_CR2] == page + 8);
}
static void on_segv(int sig) { mprotect(page, 4096, PROT_READ | PROT_WRITE); }
static void *thread(void *arg) { show("thread"); raise(SIGUSR1); return 0; }
int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    if (argc > 1) { page = (char *)strtoul(argv[1], 0, 0); show("exec"); raise(SIGUSR1); return 0; }
    signal(SIGSEGV, on_segv);
    page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[8] = 1;
    static char alt[65536];
    stack_t ss = {alt, (int)(1U << 31), sizeof alt};            /* SS_AUTODISARM */
    sigaltstack(&ss, 0);
    show("main");
    pthread_t t; pthread_create(&t, 0, thread, 0); pthread_join(t, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        show("child"); fflush(stdout);
        char buf[32]; snprintf(buf, sizeof buf, "%p", page);
        execl(argv[0], argv[0], buf, (char *)0);
        _exit(9);
    }
    int st; waitpid(pid, &st, 0);
    printf("child status %d\n", st);
    return 0;
}
"""

SLEEPS_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static void on_alrm(int sig) {}
static void alarm_in(long ms) {
    struct itimerval it = {{0, 0}, {ms / 1000, ms % 1000 * 1000}};
    setitimer(ITIMER_REAL, &it, 0);
}
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
static const char *err(long r) { return r ? strerrorname_np(errno) : "0"; }
int main(void) {
    long r = syscall(SYS_restart_syscall);
    printf("restart_syscall at start: %ld %s\n", r, err(r));
    struct sigaction sa = {0};
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, 0);
    struct timespec req = {1, 0}, rem = {-1, -1};
    alarm_in(200);
    r = syscall(SYS_nanosleep, &req, &rem);
    printf("nanosleep, handler: %ld %s rem %.1f\n", r, err(r), rem.tv_sec + rem.tv_nsec / 1e9);
    r = syscall(SYS_restart_syscall);
    printf("restart_syscall after a handler: %ld %s\n", r, err(r));
    rem.tv_sec = rem.tv_nsec = -1;
    alarm_in(300);
    r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &req, &rem);
    printf("clock_nanosleep: %ld %s rem %.1f\n", r, err(r), rem.tv_sec + rem.tv_nsec / 1e9);
    struct timespec abs; clock_gettime(CLOCK_MONOTONIC, &abs); abs.tv_sec += 1;
    rem.tv_sec = 7; rem.tv_nsec = 0;
    alarm_in(100);
    r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, &rem);
    printf("clock_nanosleep abstime: %ld %s rem %.1f\n", r, err(r), rem.tv_sec + rem.tv_nsec / 1e9);
    alarm_in(100);
    r = syscall(SYS_nanosleep, &req, (void *)8);
    printf("nanosleep, bad rem: %ld %s\n", r, err(r));
    alarm_in(100);
    r = syscall(SYS_nanosleep, &req, NULL);
    printf("nanosleep, no rem: %ld %s\n", r, err(r));
    fflush(stdout);
    pid_t parent = getpid();
    if (fork() == 0) {
        struct timespec tenth = {0, 100000000};
        nanosleep(&tenth, 0);
        kill(parent, SIGSTOP);
        nanosleep(&tenth, 0);
        kill(parent, SIGCONT);
        _exit(0);
    }
    double t0 = now();
    req.tv_sec = 0; req.tv_nsec = 500000000;
    r = syscall(SYS_nanosleep, &req, &rem);
    printf("nanosleep stopped and continued: %ld slept %.1f\n", r, now() - t0);
    wait(0);
    return 0;
}
"""

POLLS_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static void on_alrm(int sig) {}
static void alarm_in(long ms) {
    struct itimerval it = {{0, 0}, {ms / 1000, ms % 1000 * 1000}};
    setitimer(ITIMER_REAL, &it, 0);
}
static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : ""; }
static double secs(struct timespec *t) { return t->tv_sec + t->tv_nsec / 1e9; }
int main(int argc, char **argv) {
    int p[2]; pipe(p);
    int fd = open(argv[0], O_RDONLY);
    struct pollfd fds[5] = {{p[0], POLLIN}, {p[1], POLLOUT}, {fd, POLLIN | POLLOUT | POLLPRI}, {-1, POLLIN},
                            {99, POLLIN}};
    int r = poll(fds, 5, 0);
    printf("poll empty pipe: %d: %x %x %x %x %x\n", r, fds[0].revents, fds[1].revents, fds[2].revents,
           fds[3].revents, fds[4].revents);
    write(p[1], "x", 1);
    r = poll(fds, 2, -1);
    printf("poll data: %d: %x %x\n", r, fds[0].revents, fds[1].revents);
    char c; read(p[0], &c, 1);
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    fds[0].revents = 0x7777;
    r = poll(fds, 1, 300);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("poll timeout: %d revents %x after %.1f\n", r, fds[0].revents, secs(&t1) - secs(&t0));
    struct sigaction sa = {0}; sa.sa_handler = on_alrm; sigaction(SIGALRM, &sa, 0);
    alarm_in(100);
    r = poll(fds, 1, 2000);
    printf("poll interrupted: %d %s\n", r, err(r));
    fd_set rs, ws; FD_ZERO(&rs); FD_ZERO(&ws); FD_SET(p[0], &rs); FD_SET(p[1], &ws); FD_SET(fd, &rs);
    struct timeval tv = {2, 500000};
    r = syscall(SYS_select, fd + 1, &rs, &ws, NULL, &tv);
    printf("select: %d in %d %d out %d tv %.1f\n", r, FD_ISSET(p[0], &rs), FD_ISSET(fd, &rs),
           FD_ISSET(p[1], &ws), tv.tv_sec + tv.tv_usec / 1e6);
    FD_ZERO(&rs); FD_SET(p[0], &rs);
    alarm_in(200);
    tv.tv_sec = 1; tv.tv_usec = 0;
    r = syscall(SYS_select, p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select interrupted: %d %s in %d tv %.1f\n", r, err(r), FD_ISSET(p[0], &rs),
           tv.tv_sec + tv.tv_usec / 1e6);
    FD_ZERO(&rs); FD_SET(p[0], &rs);
    tv.tv_sec = 0; tv.tv_usec = 300000;
    r = syscall(SYS_select, p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select timeout: %d in %d tv %ld.%06ld\n", r, FD_ISSET(p[0], &rs), tv.tv_sec, tv.tv_usec);
    FD_ZERO(&rs); FD_SET(42, &rs);
    r = syscall(SYS_select, 43, &rs, NULL, NULL, NULL);
    printf("select bad fd: %d %s\n", r, err(r));
    tv.tv_sec = -1;
    r = syscall(SYS_select, 1, NULL, NULL, NULL, &tv);
    printf("select bad tv: %d %s\n", r, err(r));
    r = syscall(SYS_poll, (void *)8, 1, 0);
    printf("poll efault: %d %s\n", r, err(r));
    sigset_t block, none; sigemptyset(&block); sigaddset(&block, SIGALRM); sigprocmask(SIG_BLOCK, &block, 0);
    sigemptyset(&none);
    alarm_in(100);
    struct timespec ts = {1, 0};
    r = syscall(SYS_ppoll, fds, 1, &ts, &none, 8);
    sigset_t now; sigprocmask(SIG_BLOCK, NULL, &now);
    printf("ppoll interrupted: %d %s alrm blocked after %d ts %.1f\n", r, err(r), sigismember(&now, SIGALRM),
           secs(&ts));
    ts.tv_sec = 0; ts.tv_nsec = 200000000;
    r = syscall(SYS_ppoll, fds, 1, &ts, NULL, 8);
    printf("ppoll timeout: %d ts %ld.%09ld\n", r, ts.tv_sec, ts.tv_nsec);
    r = syscall(SYS_ppoll, fds, 1, NULL, &none, 4);
    printf("ppoll bad sigsetsize: %d %s\n", r, err(r));
    FD_ZERO(&rs); FD_SET(p[0], &rs);
    struct { const sigset_t *ss; size_t len; } arg = {&none, 8};
    alarm_in(100);
    ts.tv_sec = 1; ts.tv_nsec = 0;
    r = syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &ts, &arg);
    printf("pselect6 interrupted: %d %s ts %.1f\n", r, err(r), secs(&ts));
    sigprocmask(SIG_UNBLOCK, &block, 0);
    close(p[0]);
    r = poll(&fds[1], 1, 0);
    printf("poll no reader: %d %x\n", r, fds[1].revents);
    int q[2]; pipe(q); close(q[1]);
    struct pollfd h = {q[0], POLLIN};
    r = poll(&h, 1, -1);
    printf("poll no writer: %d %x\n", r, h.revents);
    int s[2]; pipe(s);
    if (fork() == 0) { struct timespec d = {0, 100000000}; nanosleep(&d, 0); write(s[1], "hi", 2); _exit(0); }
    struct pollfd w = {s[0], POLLIN};
    r = poll(&w, 1, -1);
    printf("poll woken by a child: %d %x\n", r, w.revents);
    FD_ZERO(&rs); FD_SET(s[0], &rs);
    char two[2]; read(s[0], two, 2);
    if (fork() == 0) { struct timespec d = {0, 100000000}; nanosleep(&d, 0); write(s[1], "hi", 2); _exit(0); }
    r = syscall(SYS_select, s[0] + 1, &rs, NULL, NULL, NULL);
    printf("select woken by a child: %d in %d\n", r, FD_ISSET(s[0], &rs));
    wait(0); wait(0);
    /* stopped and continued while polling: restart_syscall polls on to the same end */
    pid_t parent = getpid();
    int z[2]; pipe(z);
    if (fork() == 0) {
        struct timespec tenth = {0, 100000000};
        nanosleep(&tenth, 0); kill(parent, SIGSTOP); nanosleep(&tenth, 0); kill(parent, SIGCONT);
        _exit(0);
    }
    struct pollfd zz = {z[0], POLLIN};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = poll(&zz, 1, 500);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("poll stopped and continued: %d after %.1f\n", r, secs(&t1) - secs(&t0));
    wait(0);
    return 0;
}
"""

PIPESIG_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_pipe(int sig, siginfo_t *si, void *uc) {
    printf("SIGPIPE code %d pid_is_self %d\n", si->si_code, si->si_pid == getpid());
}
int main(void) {
    int p[2]; pipe(p); close(p[0]);
    struct sigaction sa = {0}; sa.sa_sigaction = on_pipe; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGPIPE, &sa, 0);
    int r = write(p[1], "x", 1);
    printf("write: %d %s\n", r, strerror(errno));
    struct iovec v = {"y", 1};
    r = writev(p[1], &v, 1);
    printf("writev: %d %s\n", r, strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    r = write(p[1], "x", 1);
    printf("ignored: %d %s\n", r, strerror(errno));
    fflush(stdout);
    signal(SIGPIPE, SIG_DFL);
    pid_t pid = fork();
    if (pid == 0) { write(p[1], "x", 1); _exit(0); }
    int st; waitpid(pid, &st, 0);
    printf("child: signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
}
"""

RUSAGE_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t pid = fork();
    if (pid == 0) { char *p = malloc(20 << 20); memset(p, 1, 20 << 20); _exit(0); }
    struct rusage ru; memset(&ru, 0xff, sizeof ru);
    int st;
    pid_t got = wait4(pid, &st, 0, &ru);
    printf("reaped %d maxrss>=20MiB %d maxrss<64MiB %d utime %ld nsignals %ld\n", got == pid,
           ru.ru_maxrss >= 20480, ru.ru_maxrss < 65536, ru.ru_utime.tv_sec, ru.ru_nsignals);
    pid = fork();
    if (pid == 0) _exit(3);
    memset(&ru, 0xff, sizeof ru);
    got = wait4(pid, &st, 0, &ru);
    printf("small child: maxrss<20MiB %d\n", ru.ru_maxrss < 20480);
    return 0;
}
"""

ROBUST_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static pthread_mutex_t m;
static void *holder(void *arg) {
    pthread_mutex_lock(&m);
    printf("thread: locked, exiting\n"); fflush(stdout);
    struct timespec d = {0, 200000000}; nanosleep(&d, 0);   /* main blocks on the lock */
    return 0;                                               /* and the thread dies holding it */
}
static void robust_init(pthread_mutex_t *mx, int pshared) {
    pthread_mutexattr_t a; pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared) pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(mx, &a);
}
static const char *name(int r) { return r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r); }
int main(void) {
    robust_init(&m, 0);
    pthread_t t; pthread_create(&t, 0, holder, 0);
    struct timespec d = {0, 50000000}; nanosleep(&d, 0);
    int r = pthread_mutex_lock(&m);
    printf("main: lock %s\n", name(r));
    if (r == EOWNERDEAD) pthread_mutex_consistent(&m);
    pthread_mutex_unlock(&m);
    pthread_join(t, 0);
    printf("main: again %s\n", name(pthread_mutex_lock(&m)));
    pthread_mutex_unlock(&m);
    pthread_mutex_t *sm = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    robust_init(sm, 1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { pthread_mutex_lock(sm); struct timespec e = {0, 200000000}; nanosleep(&e, 0); _exit(0); }
    nanosleep(&d, 0);
    printf("parent: lock %s\n", name(pthread_mutex_lock(sm)));
    int st; waitpid(pid, &st, 0);
    printf("child status %d\n", st);
    return 0;
}
"""

SENDFILE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>
static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : ""; }
int main(int argc, char **argv) {
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    int p[2]; pipe(p);
    off_t off = 2;
    long r = sendfile(p[1], in, &off, 5);
    char buf[64] = {0};
    read(p[0], buf, sizeof buf);
    printf("sendfile to a pipe: %ld off %ld \"%s\" in at %ld\n", r, (long)off, buf,
           (long)lseek(in, 0, SEEK_CUR));
    r = sendfile(out, in, NULL, 100);
    printf("sendfile to a file: %ld in at %ld out at %ld\n", r, (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(out, 0, SEEK_CUR));
    r = sendfile(out, in, NULL, 100);
    printf("sendfile at the end: %ld\n", r);
    r = sendfile(out, p[0], NULL, 10);
    printf("sendfile from a pipe: %ld %s\n", r, err(r));
    r = sendfile(in, out, NULL, 10);
    printf("sendfile to a read-only fd: %ld %s\n", r, err(r));
    loff_t a = 3, b = 100;
    r = copy_file_range(in, &a, out, &b, 4, 0);
    printf("copy_file_range: %ld a %ld b %ld out at %ld\n", r, (long)a, (long)b,
           (long)lseek(out, 0, SEEK_CUR));
    lseek(in, 0, SEEK_SET);
    r = copy_file_range(in, NULL, out, NULL, 1L << 40, 0);
    printf("copy_file_range positions: %ld in at %ld out at %ld\n", r, (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(out, 0, SEEK_CUR));
    r = copy_file_range(in, NULL, p[1], NULL, 4, 0);
    printf("copy_file_range to a pipe: %ld %s\n", r, err(r));
    r = copy_file_range(in, NULL, out, NULL, 4, 1);
    printf("copy_file_range flags: %ld %s\n", r, err(r));
    a = 0; b = 2;
    r = copy_file_range(out, &a, out, &b, 4, 0);
    printf("copy_file_range overlapping: %ld %s\n", r, err(r));
    int app = open(argv[2], O_WRONLY | O_APPEND);
    r = copy_file_range(in, NULL, app, NULL, 4, 0);
    printf("copy_file_range O_APPEND: %ld %s\n", r, err(r));
    r = posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    printf("fadvise: %ld\n", r);
    printf("fadvise pipe: %d\n", posix_fadvise(p[0], 0, 0, POSIX_FADV_NORMAL));
    printf("fadvise bad advice: %d\n", posix_fadvise(in, 0, 0, 9));
    printf("fadvise negative length: %d\n", posix_fadvise(in, 0, -1, 0));
    char back[64] = {0};
    pread(out, back, sizeof back - 1, 0);
    printf("out: \"%s\"\n", back);
    return 0;
}
"""

#: what the model does otherwise than the kernel (docs/deviations.md), by its argument
DEVIATIONS_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static pthread_mutex_t *sm;
static void *holder(void *arg) { pthread_mutex_lock(sm); pause(); return 0; }
int main(int argc, char **argv) {
    if (!strcmp(argv[1], "rusage")) {
        pid_t pid = fork();
        if (pid == 0) { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); _exit(0); }
        struct rusage ru; int st;
        wait4(pid, &st, 0, &ru);
        printf("utime %ld.%06ld minflt %ld nvcsw %ld\n", ru.ru_utime.tv_sec, ru.ru_utime.tv_usec,
               ru.ru_minflt, ru.ru_nvcsw);
    } else if (!strcmp(argv[1], "pipe")) {
        int p[2]; pipe2(p, O_NONBLOCK);
        static char big[100000];
        printf("wrote %zd\n", write(p[1], big, sizeof big));
    } else if (!strcmp(argv[1], "exec")) {
        sm = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        pthread_mutexattr_t a; pthread_mutexattr_init(&a);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutex_init(sm, &a);
        pid_t pid = fork();
        if (pid == 0) {
            pthread_t t; pthread_create(&t, 0, holder, 0);
            struct timespec d = {0, 100000000}; nanosleep(&d, 0);
            execl("/bin/true", "true", (char *)0);
            _exit(9);
        }
        int st; waitpid(pid, &st, 0);
        struct timespec until; clock_gettime(CLOCK_REALTIME, &until); until.tv_sec += 1;
        int r = pthread_mutex_timedlock(sm, &until);
        printf("after the holder's execve: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerrorname_np(r));
    }
    return 0;
}
"""

SOURCES = {"raxkeep": (RAXKEEP_C, ["-O1"]), "errcode": (ERRCODE_C, ["-O1"]),
           "altstack": (ALTSTACK_C, ["-O1", "-pthread"]), "sleeps": (SLEEPS_C, ["-O1"]),
           "polls": (POLLS_C, ["-O1"]), "pipesig": (PIPESIG_C, []), "rusage": (RUSAGE_C, ["-O1"]),
           "robust": (ROBUST_C, ["-O1", "-pthread"]), "sendfile": (SENDFILE_C, ["-O1"]),
           "deviations": (DEVIATIONS_C, ["-O1", "-pthread"])}


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixes")
    for name, (src, flags) in SOURCES.items():
        (out / (name + ".c")).write_text(src)
        subprocess.run(["gcc", *flags, "-o", str(out / name), str(out / (name + ".c"))],
                       check=True, capture_output=True)
    (out / "data.txt").write_bytes(b"helloworld\n")
    return out


@pytest.mark.parametrize("name", ["raxkeep", "errcode", "altstack", "sleeps", "polls", "pipesig",
                                  "rusage", "robust"])
def test_program_as_natively(progs, name):
    argv = [str(progs / name)]
    assert run_model(argv) == run_native(argv)


def test_expected_outputs(progs):
    """What some programs print, spelled out (the native run could be wrong too)."""
    status, out = run_model([str(progs / "raxkeep")])
    assert out == b"-512 -> -512\n-513 -> -513\n-514 -> -514\n-516 -> -516\n-4 -> -4\n"
    status, out = run_model([str(progs / "sleeps")])
    assert out.decode().splitlines() == [
        "restart_syscall at start: -1 EINTR",
        "nanosleep, handler: -1 EINTR rem 0.8",
        "restart_syscall after a handler: -1 EINTR",
        "clock_nanosleep: -1 EINTR rem 0.7",
        "clock_nanosleep abstime: -1 EINTR rem 7.0",
        "nanosleep, bad rem: -1 EFAULT",
        "nanosleep, no rem: -1 EINTR",
        "nanosleep stopped and continued: 0 slept 0.5"]
    status, out = run_model([str(progs / "robust")])
    assert out == (b"thread: locked, exiting\nmain: lock EOWNERDEAD\nmain: again Success\n"
                   b"parent: lock EOWNERDEAD\nchild status 0\n")


def test_sendfile_copy_file_range_fadvise_as_natively(progs, tmp_path):
    native_out, model_out = tmp_path / "native.out", tmp_path / "model.out"
    native = run_native([str(progs / "sendfile"), str(progs / "data.txt"), str(native_out)])
    model = run_model([str(progs / "sendfile"), str(progs / "data.txt"), str(model_out)])
    assert model == native
    assert b"copy_file_range: 4 a 7 b 104" in model[1]


def vmsim_run(args: list[str], cwd, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "vmsim", "run", *args], cwd=cwd, env=env,
                          timeout=600, **kw)


def test_cat_to_a_file_copies_with_copy_file_range(tmp_path):
    """cat's stdout a regular file: copy_file_range from the input, no read buffer mapped,
    the file's bytes and the mm calls as natively."""
    (tmp_path / "lines.txt").write_text("pear\napple\nfig\n")
    with open(tmp_path / "model.txt", "wb") as out:
        model = vmsim_run(["--trace", "--", "cat", "lines.txt"], tmp_path, stdout=out, stderr=subprocess.PIPE)
    assert model.returncode == 0
    assert (tmp_path / "model.txt").read_bytes() == b"pear\napple\nfig\n"
    trace = model.stderr.decode()
    assert "copy_file_range(3, NULL, 1, NULL, 9223372035781033984, 0) = 15" in trace
    assert "fadvise64(3, 0, 0, POSIX_FADV_SEQUENTIAL) = 0" in trace
    if not NATIVE_STRACE:
        return
    log = tmp_path / "native.strace"
    with open(tmp_path / "native.txt", "wb") as out:
        subprocess.run(["setarch", "-R", "strace", "-o", str(log), "cat", "lines.txt"], cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}, stdout=out, timeout=60)
    native = log.read_text()
    calls = ("mmap(", "munmap(", "mprotect(", "brk(", "copy_file_range(", "fadvise64(")
    assert _lines(trace, calls) == _lines(native, calls)


def _lines(text: str, calls: tuple[str, ...]) -> list[str]:
    return [" = ".join(part.strip() for part in line.rsplit(" = ", 1))
            for line in text.splitlines() if line.startswith(calls)]


def test_python_subprocess_run_polls_its_pipes(tmp_path):
    """subprocess.run(capture_output=True) reads the child's pipes through poll(2)."""
    code = ("import subprocess; r = subprocess.run(['echo', 'hi'], capture_output=True, timeout=30); "
            "print(r.returncode, r.stdout)")
    argv = ["python3", "-c", code]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    native = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], tmp_path, capture_output=True)
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)
    assert model.stdout == b"0 b'hi\\n'\n"
    # epoll_create1 is served (vmsim.fs.eventpoll): nothing reported, as natively
    assert model.stderr == native.stderr == b""


CLOSE_RANGE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	int a = dup(1), b = dup(1), c = dup(1);
	long r;

	r = syscall(SYS_close_range, 5, 4, 0);
	printf("fd above max_fd: %ld %d\n", r, r ? errno : 0);
	r = syscall(SYS_close_range, 3, 100, 8);
	printf("unknown flag: %ld %d\n", r, r ? errno : 0);
	r = syscall(SYS_close_range, b, b, 4);
	printf("CLOEXEC: %ld, F_GETFD %d\n", r, fcntl(b, F_GETFD));
	r = syscall(SYS_close_range, a, a, 0);
	printf("closed: %ld, F_GETFD %d\n", r, fcntl(a, F_GETFD));
	r = syscall(SYS_close_range, 1000, 2000, 0);
	printf("nothing open: %ld\n", r);
	r = syscall(SYS_close_range, c, ~0U, 2);
	printf("UNSHARE to the end: %ld, F_GETFD %d %d\n", r, fcntl(c, F_GETFD), fcntl(b, F_GETFD));
	return 0;
}
"""


def test_close_range_as_natively(tmp_path):
    """close_range(2) (Python's subprocess closes its child's fds with it): the errors,
    CLOSE_RANGE_CLOEXEC, closing to ~0U, as this kernel answers."""
    (tmp_path / "cr.c").write_text(CLOSE_RANGE_C)
    subprocess.run(["gcc", "-o", str(tmp_path / "cr"), str(tmp_path / "cr.c")], check=True)
    argv = [str(tmp_path / "cr")]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    native = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], tmp_path, capture_output=True)
    assert (model.returncode, model.stdout, model.stderr) == (native.returncode, native.stdout, native.stderr)
    assert native.stdout.decode().splitlines() == [
        "fd above max_fd: -1 22", "unknown flag: -1 22", "CLOEXEC: 0, F_GETFD 1",
        "closed: 0, F_GETFD -1", "nothing open: 0", "UNSHARE to the end: 0, F_GETFD -1 1"]


@pytest.mark.parametrize("argv", [["sh", "-c", "yes | head -1"],
                                  ["sh", "-c", "(yes; echo $? >&2) | head -1"]],
                         ids=["status", "yes-status"])
def test_yes_into_head_ends_by_sigpipe_as_natively(tmp_path, argv):
    """`yes | head -1`: yes dies of SIGPIPE once head has gone, silently (its status as
    the shell sees it: 128 + 13)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    native = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], tmp_path, capture_output=True)
    assert (model.returncode, model.stdout, model.stderr) == (native.returncode, native.stdout, native.stderr)
    assert model.stdout == b"y\n" and model.stderr in (b"", b"141\n")


def test_a_closed_host_stdout_is_sigpipe(tmp_path):
    """The host pipe vmsim writes the program's stdout to loses its reader: the program
    gets SIGPIPE, as natively (`vmsim run` exits 128 + 13)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-m", "vmsim", "run", "--", "yes"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.read(2) == b"y\n"
    proc.stdout.close()
    _, err = proc.communicate(timeout=600)
    assert (proc.returncode, err) == (128 + 13, b"")
    native = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    assert native.stdout is not None
    native.stdout.read(2)
    native.stdout.close()
    assert native.wait(timeout=60) == -13


@pytest.mark.skipif(not NATIVE_STRACE, reason="needs strace")
def test_strace_lines_of_poll_select_sendfile_as_natively(progs, tmp_path):
    """--trace writes poll, ppoll, select, pselect6, sendfile, copy_file_range and
    fadvise64 as strace does; the time a call left (`left {...}`) is the virtual clock's,
    exact, where the native one is a little less."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    argv = [str(progs / "sendfile"), str(progs / "data.txt"), str(tmp_path / "out")]
    log = tmp_path / "native.strace"
    native_strace(log, argv, env)
    model = vmsim_run(["--trace", "--", *argv], tmp_path, capture_output=True)
    calls = ("sendfile(", "copy_file_range(", "fadvise64(")
    assert _lines(model.stderr.decode(), calls) == _lines(log.read_text(), calls)
    argv = [str(progs / "polls")]
    native_strace(log, argv, env)
    model = vmsim_run(["--trace", "--", *argv], tmp_path, capture_output=True)
    calls = ("poll(", "ppoll(", "select(", "pselect6(")
    unprefixed = [re.sub(r"^\[pid +\d+\] ", "", line) for line in model.stderr.decode().splitlines()]
    assert _completed(unprefixed, calls) == _completed(log.read_text().splitlines(), calls)


def native_strace(log, argv: list[str], env: dict[str, str]) -> None:
    """argv run natively under `setarch -R strace -o log`, as `vmsim run` runs it."""
    subprocess.run(["setarch", "-R", "strace", "-o", str(log), *argv], env=env, capture_output=True,
                   timeout=60, check=True)


def _completed(lines: list[str], calls: tuple[str, ...]) -> list[str]:
    """The calls that returned (strace shows an interrupted one `= ? ERESTART...`; the
    model's trace shows how a sleeping call ended only by what follows). Of select and
    pselect6 only the name and what follows the result: their fd sets are read after
    the call, when they hold the ready fds (strace reads them at entry too)."""
    out = []
    for line in lines:
        if not line.startswith(calls) or " = ?" in line:
            continue
        line = _no_times(line)
        if line.startswith(("select(", "pselect6(")):
            line = line.split("(", 1)[0] + " = " + line.rsplit(" = ", 1)[1]
        out.append(line)
    return out


def _no_times(line: str) -> str:
    """A call's line without the times a native run cannot give exactly (the time left
    written back to a timeout), its spacing normalised."""
    line = re.sub(r"\{tv_sec=\d+, tv_(n|u)sec=\d+\}", "{TIME}", line)
    return " = ".join(part.strip() for part in line.rsplit(" = ", 1))


def test_page_fault_error_code_follows_the_pte():
    """The error code of a refused access: PROT only where the model maps a page. The
    zero page a read of anonymous memory maps is not recorded by the model: a write
    after such a read reports no PROT (6), where the kernel reports 7
    (docs/deviations.md)."""
    p = Kernel(pkeys=False).spawn()
    page = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    p.read(page, 1)
    with pytest.raises(Fault) as fault:
        p.write(page, b"x")
    assert not pte_present(p, fault.value, "w")
    assert page_fault(fault.value, "w", False).error_code == X86_PF_WRITE
    assert X86_PF_USER | page_fault(fault.value, "w", True).error_code == 7


def test_erestart_codes_are_defined_once():
    """-ERESTARTSYS and its kin have one definition: vmsim.errors."""
    root = os.path.join(REPO, "vmsim")
    defined = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            for node in ast.walk(ast.parse(open(path).read(), path)):
                targets = node.targets if isinstance(node, ast.Assign) else []
                names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                if any(n.startswith("ERESTART") for n in names):
                    defined.append(os.path.relpath(path, REPO))
    assert defined == ["vmsim/errors.py"]


def test_restart_syscall_is_in_the_table():
    from vmsim.arch.x86.entry.syscall_64 import THREAD_CALLS
    from vmsim.arch.x86.signal import NR_RESTART_SYSCALL
    from vmsim.syscalls.table import SYS_CALL_TABLE
    assert SYS_CALL_TABLE[NR_RESTART_SYSCALL].name == "restart_syscall"
    assert "restart_syscall" in THREAD_CALLS


def test_a_host_stream_answers_poll_as_the_host(tmp_path):
    """A stdio file's readiness is the host fd's: a pipe with bytes is readable, one
    without is not, one whose writer has gone hangs up."""
    r, w = os.pipe()
    try:
        stream = HostStream(r)
        assert stream.poll() == 0
        os.write(w, b"x")
        assert stream.poll() & select.POLLIN
        os.read(r, 1)
        os.close(w)
        w = -1
        assert stream.poll() & select.POLLHUP
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# --- deviations (docs/deviations.md): the model's behaviour pinned, the kernel's beside it

def test_rusage_has_no_times_or_counts(progs):
    """wait4's rusage: the model keeps no CPU time and counts no faults or switches."""
    argv = [str(progs / "deviations"), "rusage"]
    assert run_model(argv) == (0, b"utime 0.000000 minflt 0 nvcsw 0\n")
    assert b"minflt 0 " not in run_native(argv)[1]


def test_pipes_never_fill(progs):
    """A pipe holds 16 pages: a non-blocking write of more is short. The model's pipe
    takes everything."""
    argv = [str(progs / "deviations"), "pipe"]
    assert run_model(argv) == (0, b"wrote 100000\n")
    assert run_native(argv) == (0, b"wrote 65536\n")


def test_robust_mutex_held_across_execve_is_not_released(progs):
    """A thread holding a process-shared robust mutex dies when another thread of its
    process executes a program: the kernel marks the mutex FUTEX_OWNER_DIED, the model
    (whose execve has replaced the mm when the threads go) does not."""
    argv = [str(progs / "deviations"), "exec"]
    assert run_model(argv) == (0, b"after the holder's execve: ETIMEDOUT\n")
    assert run_native(argv) == (0, b"after the holder's execve: EOWNERDEAD\n")
