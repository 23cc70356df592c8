"""epoll(7) and eventfd(2) under `vmsim run` (issue #11; vmsim.fs.eventpoll,
vmsim.fs.eventfd), checked against this machine's kernel: a C program of our own, built
with gcc at test time, run natively and on the model, outputs and exit statuses
compared; its epoll and eventfd calls traced as this machine's strace prints them.

The program's parts (its first argument):
    pipes     a pipe watched level-triggered, edge-triggered (EPOLLET), EPOLLONESHOT
              re-armed by EPOLL_CTL_MOD, the write end, POLLHUP (EPOLLRDHUP asked),
              a watch gone with its file's close, maxevents and the ready list's order
    waits     a timeout on the virtual clock (epoll_wait, epoll_pwait2), a child
              writing to the pipe after a nanosleep while the parent waits
    errors    the errno table of epoll_create, epoll_create1, epoll_ctl (EPERM, EBADF,
              EINVAL, EEXIST, ENOENT, EFAULT, ELOOP, EPOLLEXCLUSIVE's rules),
              epoll_wait, and read(2) of an epoll fd
    eventfds  the counter (EFD_NONBLOCK: EAGAIN), the 8-byte rule, ULLONG_MAX,
              readiness, EFD_SEMAPHORE, EFD_CLOEXEC, a reader woken by a child's write
A second program (SIGNALS_C) checks a signal ending the waits and epoll_pwait's mask;
asyncio running a subprocess is compared with the native run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from test_run_cpu import run_model, run_native  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_STRACE = shutil.which("strace") is not None

EPOLL_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T(name, expr) \
	do { errno = 0; long r_ = (long)(expr); printf("%s %ld %d\n", name, r_, errno); } while (0)

static void show(const char *what, int n, struct epoll_event *ev)
{
	printf("%s: %d", what, n);
	if (n < 0)
		printf(" errno=%d", errno);
	for (int i = 0; i < n; i++)
		printf(" [%#x %lu]", ev[i].events, (unsigned long)ev[i].data.u64);
	printf("\n");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pipes(void)
{
	struct epoll_event ev = {0}, out[8];
	int p[2], ep, n;
	char buf[16];

	printf("sizeof %zu\n", sizeof(struct epoll_event));
	/* level-triggered */
	pipe(p);
	ep = epoll_create1(EPOLL_CLOEXEC);
	printf("cloexec %d\n", fcntl(ep, F_GETFD));
	ev.events = EPOLLIN; ev.data.u64 = 7;
	printf("add %d\n", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	n = epoll_wait(ep, out, 8, 0); show("lt empty", n, out);
	write(p[1], "abc", 3);
	n = epoll_wait(ep, out, 8, 0); show("lt ready", n, out);
	n = epoll_wait(ep, out, 8, 0); show("lt again", n, out);
	read(p[0], buf, 3);
	n = epoll_wait(ep, out, 8, 0); show("lt drained", n, out);
	/* edge-triggered */
	ev.events = EPOLLIN | EPOLLET; ev.data.u64 = 8;
	printf("mod %d\n", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	write(p[1], "abc", 3);
	n = epoll_wait(ep, out, 8, 0); show("et ready", n, out);
	n = epoll_wait(ep, out, 8, 0); show("et again", n, out);
	write(p[1], "d", 1);
	n = epoll_wait(ep, out, 8, 0); show("et more", n, out);
	read(p[0], buf, 4);
	/* oneshot */
	ev.events = EPOLLIN | EPOLLONESHOT; ev.data.u64 = 9;
	printf("mod %d\n", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	write(p[1], "x", 1);
	n = epoll_wait(ep, out, 8, 0); show("os ready", n, out);
	n = epoll_wait(ep, out, 8, 0); show("os disabled", n, out);
	printf("mod %d\n", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	n = epoll_wait(ep, out, 8, 0); show("os rearmed", n, out);
	read(p[0], buf, 1);
	/* write end, hangup */
	ev.events = EPOLLOUT; ev.data.u64 = 10;
	printf("add w %d\n", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
	n = epoll_wait(ep, out, 8, 0); show("out", n, out);
	printf("del w %d\n", epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
	ev.events = EPOLLIN | EPOLLRDHUP; ev.data.u64 = 11;
	printf("mod %d\n", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	close(p[1]);
	n = epoll_wait(ep, out, 8, 0); show("hup", n, out);
	/* close removes the watch */
	close(p[0]);
	n = epoll_wait(ep, out, 8, 0); show("closed", n, out);
	pipe(p);
	T("del closed", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	/* maxevents */
	{
		int q[2]; pipe(q);
		ev.events = EPOLLIN; ev.data.u64 = 1; epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
		ev.data.u64 = 2; epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &ev);
		write(p[1], "a", 1); write(q[1], "b", 1);
		n = epoll_wait(ep, out, 1, 0); show("max1", n, out);
		n = epoll_wait(ep, out, 8, 0); show("max8", n, out);
		close(q[0]); close(q[1]);
		read(p[0], buf, 1);
	}
}

static void waits(void)
{
	struct epoll_event ev = {0}, out[8];
	int p[2], ep, n;
	char buf[16];

	pipe(p);
	ep = epoll_create1(0);
	ev.events = EPOLLIN; ev.data.u64 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	/* timeout: virtual clock */
	{
		double t0 = now();
		n = epoll_wait(ep, out, 8, 300); show("timeout", n, out);
		printf("waited %.1f\n", now() - t0);
		struct timespec ts = {0, 100000000};
		t0 = now();
		n = syscall(SYS_epoll_pwait2, ep, out, 8, &ts, NULL, 8); show("pwait2", n, out);
		printf("waited %.1f\n", now() - t0);
	}
	/* a child writes after a sleep */
	{
		pid_t pid = fork();
		if (pid == 0) {
			struct timespec ts = {0, 200000000};
			nanosleep(&ts, NULL);
			write(p[1], "late", 4);
			_exit(0);
		}
		double t0 = now();
		n = epoll_wait(ep, out, 8, -1); show("child", n, out);
		printf("waited %.1f\n", now() - t0);
		waitpid(pid, NULL, 0);
		n = read(p[0], buf, 16); printf("read %d %.4s\n", n, buf);
	}
}

static void errors(void)
{
	struct epoll_event ev = {0}, out[8];
	int p[2], ep, n;
	char buf[16];

	pipe(p);
	ep = epoll_create1(0);
	ev.events = EPOLLIN; ev.data.u64 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	/* errors */
	{
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0) fd = open("/etc/passwd", O_RDONLY);
		ev.events = EPOLLIN;
		T("regular", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
		T("badfd", epoll_ctl(ep, EPOLL_CTL_ADD, 99, &ev));
		T("badep", epoll_ctl(99, EPOLL_CTL_ADD, p[0], &ev));
		T("notep", epoll_ctl(p[1], EPOLL_CTL_ADD, p[0], &ev));
		T("self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
		T("exist", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
		T("noent", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));
		T("badop", epoll_ctl(ep, 7, p[0], &ev));
		T("efault", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], (void *)8));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		T("excl mod", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLPRI;
		T("excl bits", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
		ev.events = EPOLLOUT | EPOLLEXCLUSIVE;
		T("excl add", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
		ev.events = EPOLLOUT;
		T("excl mod2", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));
		int ep2 = epoll_create(1);
		ev.events = EPOLLIN;
		T("nest", epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev));
		T("loop", epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		T("excl ep", epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev));
		T("create0", epoll_create(0));
		T("create1 bad", epoll_create1(1));
		T("wait max0", epoll_wait(ep, out, 0, 0));
		T("wait badfd", epoll_wait(99, out, 1, 0));
		T("wait notep", epoll_wait(p[0], out, 1, 0));
		T("wait efault", epoll_wait(ep, (void *)-4096L, 1, 0));
		T("read ep", read(ep, buf, 8));
	}
}

static void eventfds(void)
{
	struct epoll_event ev = {0}, out[8];
	int p[2], ep, n;
	char buf[16];

	ep = epoll_create1(0);
	p[1] = -1;
	(void)p; (void)n; (void)buf;
	/* eventfd */
	{
		uint64_t v;
		int e = eventfd(3, EFD_NONBLOCK);
		printf("flags %#x\n", fcntl(e, F_GETFL) & ~0x8000);
		v = 4; printf("w %zd\n", write(e, &v, 8));
		printf("r %zd", read(e, &v, 8)); printf(" %lu\n", (unsigned long)v);
		T("r empty", read(e, &v, 8));
		T("r short", read(e, &v, 4));
		T("w short", write(e, &v, 4));
		v = ~0ULL; T("w max", write(e, &v, 8));
		v = ~0ULL - 1; printf("w big %zd\n", write(e, &v, 8));
		v = 1; T("w full", write(e, &v, 8));
		ev.events = EPOLLIN | EPOLLOUT; ev.data.u64 = 20;
		epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
		n = epoll_wait(ep, out, 8, 0); show("efd full", n, out);
		read(e, &v, 8);
		n = epoll_wait(ep, out, 8, 0); show("efd empty", n, out);
		int s = eventfd(2, EFD_SEMAPHORE | EFD_CLOEXEC);
		printf("sem cloexec %d\n", fcntl(s, F_GETFD));
		printf("s %zd", read(s, &v, 8)); printf(" %lu\n", (unsigned long)v);
		printf("s %zd", read(s, &v, 8)); printf(" %lu\n", (unsigned long)v);
		T("bad flags", eventfd(0, 8));
		pid_t pid = fork();
		if (pid == 0) {
			struct timespec ts = {0, 50000000};
			nanosleep(&ts, NULL);
			v = 5; write(s, &v, 8);
			_exit(0);
		}
		printf("s block %zd", read(s, &v, 8)); printf(" %lu\n", (unsigned long)v);
		waitpid(pid, NULL, 0);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) return 2;
	if (!strcmp(argv[1], "pipes")) pipes();
	if (!strcmp(argv[1], "waits")) waits();
	if (!strcmp(argv[1], "errors")) errors();
	if (!strcmp(argv[1], "eventfds")) eventfds();
	return 0;
}
"""


#: a signal ends epoll_wait (EINTR, never restarted, SA_RESTART or not); epoll_pwait's
#: mask lets it in for the call only, and keeps it out
SIGNALS_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile int got;
static void on_usr1(int s) { (void)s; got++; }
int main(void)
{
	struct sigaction sa = {0};
	struct epoll_event out[2];
	sigset_t block, old;
	int ep = epoll_create1(0), n;
	sa.sa_handler = on_usr1; sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, 0);
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		struct timespec ts = {0, 100000000};
		nanosleep(&ts, NULL); kill(parent, SIGUSR1);
		nanosleep(&ts, NULL); nanosleep(&ts, NULL); kill(parent, SIGUSR1);
		_exit(0);
	}
	errno = 0; n = epoll_wait(ep, out, 2, -1); printf("wait %d %d got %d\n", n, errno, got);
	sigemptyset(&block); sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigemptyset(&block);
	errno = 0; n = epoll_pwait(ep, out, 2, -1, &block); printf("pwait %d %d got %d\n", n, errno, got);
	sigprocmask(SIG_SETMASK, NULL, &old); printf("usr1 blocked %d\n", sigismember(&old, SIGUSR1));
	sigaddset(&block, SIGUSR1);
	errno = 0; n = epoll_pwait(ep, out, 2, 50, &block); printf("pwait blocked %d %d got %d\n", n, errno, got);
	waitpid(pid, NULL, 0);
	return 0;
}
"""


def _build(out, name: str, src: str):
    (out / (name + ".c")).write_text(src)
    subprocess.run(["gcc", "-O1", "-o", str(out / name), str(out / (name + ".c"))], check=True,
                   capture_output=True)
    return out / name


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("epoll"), "epoll", EPOLL_C)


def test_epoll_signals_as_natively(tmp_path):
    argv = [str(_build(tmp_path, "signals", SIGNALS_C))]
    assert run_model(argv) == run_native(argv) == (0, b"wait -1 4 got 1\npwait -1 4 got 2\n"
                                                      b"usr1 blocked 1\npwait blocked 0 0 got 2\n")


@pytest.mark.parametrize("part", ["pipes", "waits", "errors", "eventfds"])
def test_epoll_as_natively(prog, part):
    argv = [str(prog), part]
    assert run_model(argv) == run_native(argv)


def test_epoll_outputs(prog):
    """What the parts print, spelled out where the kernel's rules show (the native run
    could be wrong too)."""
    _, out = run_model([str(prog), "pipes"])
    lines = out.decode().splitlines()
    assert lines[:4] == ["sizeof 12", "cloexec 1", "add 0", "lt empty: 0"]
    assert "et again: 0" in lines and "et more: 1 [0x1 8]" in lines
    assert "os disabled: 0" in lines and "os rearmed: 1 [0x1 9]" in lines
    assert "hup: 1 [0x10 11]" in lines and "closed: 0" in lines and "del closed -1 2" in lines
    assert "max8: 2 [0x1 2] [0x1 1]" in lines
    _, out = run_model([str(prog), "waits"])
    assert out.decode().splitlines() == ["timeout: 0", "waited 0.3", "pwait2: 0", "waited 0.1",
                                         "child: 1 [0x1 1]", "waited 0.2", "read 4 late"]
    _, out = run_model([str(prog), "errors"])
    assert out.decode().splitlines()[:3] == ["regular -1 1", "badfd -1 9", "badep -1 9"]
    assert "loop -1 40" in out.decode().splitlines()
    _, out = run_model([str(prog), "eventfds"])
    assert "r 8 7" in out.decode().splitlines() and "s block 8 1" in out.decode().splitlines()


def _epoll_lines(text: str) -> list[str]:
    """The epoll and eventfd calls of a trace, without pids, spacing and stack addresses."""
    out = []
    for line in text.splitlines():
        line = line.split("] ", 1)[-1] if line.startswith("[pid") else line
        if line.startswith(("epoll", "eventfd")) and "unfinished" not in line:
            call, result = line.rsplit(" = ", 1)
            out.append(" = ".join((call.strip(), result.strip())))
    return out


@pytest.mark.skipif(not NATIVE_STRACE, reason="needs strace")
@pytest.mark.parametrize("part", ["pipes", "errors", "eventfds"])
def test_epoll_strace_as_natively(prog, tmp_path, part):
    """`vmsim run --trace` prints the epoll and eventfd calls as strace does."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--trace", "--", str(prog), part],
                           cwd=tmp_path, env=env, capture_output=True, timeout=600)
    log = tmp_path / "native.strace"
    subprocess.run(["strace", "-o", str(log), str(prog), part], cwd=tmp_path, env=env,
                   capture_output=True, timeout=60)
    assert _stack_free(_epoll_lines(model.stderr.decode())) == _stack_free(_epoll_lines(log.read_text()))


def _stack_free(lines: list[str]) -> list[str]:
    """Stack addresses (the model's stack is not the native run's) as STACK."""
    return [" ".join("STACK," if w.startswith("0x7ff") else w for w in line.split(" ")) for line in lines]


def test_asyncio_subprocess_as_natively(tmp_path):
    """asyncio's event loop (epoll) runs a subprocess and reads its output."""
    code = ("import asyncio\n"
            "async def main():\n"
            "    p = await asyncio.create_subprocess_exec('echo', 'hi', stdout=asyncio.subprocess.PIPE)\n"
            "    out, _ = await p.communicate()\n"
            "    print(p.returncode, out)\n"
            "asyncio.run(main())\n")
    argv = ["python3", "-c", code]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    native = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--", *argv], cwd=tmp_path, env=env,
                           capture_output=True, timeout=600)
    assert native.stdout == b"0 b'hi\\n'\n"
    assert (model.returncode, model.stdout, model.stderr) == (native.returncode, native.stdout, native.stderr)
