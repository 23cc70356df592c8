"""AF_UNIX socketpair(2) under `vmsim run` (vmsim.fs.socket): a C program, built with
gcc at test time, using a pair both ways (a forked child, blocking reads, MSG_WAITALL),
nonblocking EAGAIN, MSG_PEEK, EPIPE with SIGPIPE and without it (MSG_NOSIGNAL),
shutdown(2), getsockname(2)'s length, getsockopt(2), fstat's S_IFSOCK, /proc/self/fd's
name, poll(2) and epoll readiness, and a SIGPIPE that kills; run natively and on the
model, outputs and wait statuses equal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from test_run_cpu import run_model, run_native  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_STRACE = shutil.which("strace") is not None
#: a trace line's pid prefix: `[pid 12] ` (stderr) or `12 ` (strace -o)
PREFIX = re.compile(r"^(?:\[pid\s+(\d+)\] |(\d+)\s+)")
SOCKET_CALL = re.compile(r"(?:socketpair|sendto|recvfrom|shutdown|getsockname|getpeername|getsockopt)\(")

SOCKETPAIR_C = r"""#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int pipes;
static void on_pipe(int sig) { (void)sig; pipes++; }

#define SHOW(label, expr) do { long r_ = (long)(expr); int e_ = errno; \
    printf("%s %ld %d pipes %d\n", label, r_, r_ < 0 ? e_ : 0, pipes); } while (0)

static int rev(int fd, short ev) {
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, 0);
    return n < 0 ? -errno : p.revents;
}

int main(void) {
    int sv[2], r;
    char buf[64];
    signal(SIGPIPE, on_pipe);
    SHOW("bad family", socketpair(AF_MAX, SOCK_STREAM, 0, sv));
    SHOW("bad flags", socketpair(AF_UNIX, SOCK_STREAM | 0x100, 0, sv));
    SHOW("bad proto", socketpair(AF_UNIX, SOCK_STREAM, 7, sv));
    SHOW("bad type", socketpair(AF_UNIX, 4, 0, sv));
    r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv);
    printf("pair %d %d %d fl %#x fd %d\n", r, sv[0], sv[1], fcntl(sv[0], F_GETFL) & O_NONBLOCK,
           fcntl(sv[1], F_GETFD));
    struct stat st;
    fstat(sv[0], &st);
    printf("sock %d mode %o dev %u blksize %ld size %ld\n", S_ISSOCK(st.st_mode), st.st_mode & 0777,
           minor(st.st_dev), (long)st.st_blksize, (long)st.st_size);
    struct sockaddr_un a;
    socklen_t len = sizeof a;
    memset(&a, 0x55, sizeof a);
    r = getsockname(sv[0], (struct sockaddr *)&a, &len);
    printf("name %d len %u fam %d next %#x\n", r, len, a.sun_family, (unsigned char)a.sun_path[0]);
    len = sizeof a;
    r = getpeername(sv[1], (struct sockaddr *)&a, &len);
    printf("peer %d len %u\n", r, len);
    len = 1;
    r = getsockname(sv[0], (struct sockaddr *)&a, &len);
    printf("short %d len %u\n", r, len);
    int v = -1; len = sizeof v;
    r = getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len);
    printf("type %d %d %u\n", r, v, len);
    r = getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("domain %d %d\n", r, v);
    r = getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &len);
    printf("error %d %d\n", r, v);
    SHOW("notsock", getsockname(1, (struct sockaddr *)&a, &len));
    SHOW("recv empty", recv(sv[0], buf, sizeof buf, 0));
    printf("poll %#x %#x\n", rev(sv[0], POLLIN | POLLOUT | POLLRDHUP), rev(sv[1], POLLIN | POLLOUT));
    printf("send %zd\n", send(sv[1], "ab", 2, 0));
    printf("write %zd\n", write(sv[1], "cde", 3));
    printf("poll %#x\n", rev(sv[0], POLLIN | POLLOUT | POLLRDHUP));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
    r = epoll_wait(ep, out, 2, 0);
    printf("epoll %d %#x %u\n", r, r > 0 ? out[0].events : 0, r > 0 ? out[0].data.u32 : 0);
    memset(buf, 0, sizeof buf);
    printf("peek %zd %s\n", recv(sv[0], buf, 2, MSG_PEEK), buf);
    memset(buf, 0, sizeof buf);
    printf("read %zd %s\n", read(sv[0], buf, sizeof buf), buf);
    r = epoll_wait(ep, out, 2, 0);
    printf("epoll after %d\n", r);
    SHOW("sendto addr", sendto(sv[0], "x", 1, 0, (struct sockaddr *)&a, 2));
    printf("sendto nul %zd\n", sendto(sv[0], "xy", 2, MSG_DONTWAIT, NULL, 0));
    len = sizeof a;
    memset(buf, 0, sizeof buf);
    r = recvfrom(sv[1], buf, sizeof buf, 0, (struct sockaddr *)&a, &len);
    printf("recvfrom %d %s len %u\n", r, buf, len);
    SHOW("shut bad", shutdown(sv[0], 3));
    printf("shut wr %d\n", shutdown(sv[0], SHUT_WR));
    printf("poll %#x %#x\n", rev(sv[0], POLLIN | POLLOUT | POLLRDHUP),
           rev(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    printf("recv eof %zd\n", recv(sv[1], buf, sizeof buf, 0));
    SHOW("send shut", send(sv[0], "z", 1, 0));
    SHOW("send shut nosig", send(sv[0], "z", 1, MSG_NOSIGNAL));
    printf("other way %zd\n", send(sv[1], "back", 4, 0));
    memset(buf, 0, sizeof buf);
    printf("got %zd %s\n", recv(sv[0], buf, sizeof buf, 0), buf);
    close(sv[0]);
    printf("poll closed %#x\n", rev(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    SHOW("send closed", send(sv[1], "q", 1, 0));
    SHOW("write closed", write(sv[1], "q", 1));
    SHOW("send0 closed", send(sv[1], "", 0, MSG_NOSIGNAL));
    printf("read closed %zd\n", read(sv[1], buf, sizeof buf));
    SHOW("lseek", (long)lseek(sv[1], 0, SEEK_SET));
    char link[64] = {0};
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", sv[1]);
    readlink(path, link, sizeof link - 1);
    printf("link %.8s\n", link);
    /* blocking pair, both ways */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fflush(stdout);
    if (fork() == 0) {
        char b[16] = {0};
        ssize_t n = read(sv[1], b, sizeof b);
        printf("child %zd %s\n", n, b);
        fflush(stdout);
        write(sv[1], "pong", 4);
        _exit(0);
    }
    write(sv[0], "ping", 4);
    memset(buf, 0, sizeof buf);
    r = recv(sv[0], buf, 4, MSG_WAITALL);
    printf("parent %d %s\n", r, buf);
    fflush(stdout);
    signal(SIGPIPE, SIG_DFL);
    close(sv[1]);
    int st2; wait(&st2);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[1]);
    send(sv[0], "die", 3, 0);
    printf("not reached\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    out = tmp_path_factory.mktemp("socketpair")
    (out / "socketpair.c").write_text(SOCKETPAIR_C)
    subprocess.run(["gcc", "-O1", "-o", str(out / "socketpair"), str(out / "socketpair.c")], check=True,
                   capture_output=True)
    return out / "socketpair"


def test_socketpair_as_natively(prog):
    argv = [str(prog)]
    assert run_model(argv) == run_native(argv)


def test_socketpair_outputs(prog):
    """What the program prints where the kernel's rules show (the native run could be
    wrong too), and its death by SIGPIPE."""
    status, out = run_model([str(prog)])
    lines = out.decode().splitlines()
    assert status == 13                                     # SIGPIPE
    assert lines[:4] == ["bad family -1 97 pipes 0", "bad flags -1 22 pipes 0",
                         "bad proto -1 93 pipes 0", "bad type -1 94 pipes 0"]
    assert "pair 0 3 4 fl 0x800 fd 1" in lines and "sock 1 mode 777 dev 9 blksize 4096 size 0" in lines
    assert "name 0 len 2 fam 1 next 0x55" in lines and "short 0 len 2" in lines
    assert "recv empty -1 11 pipes 0" in lines and "peek 2 ab" in lines and "read 5 abcde" in lines
    assert "sendto addr -1 106 pipes 0" in lines and "recvfrom 2 xy len 0" in lines
    assert lines[lines.index("shut wr 0") + 1] == "poll 0x4 0x2005"
    assert "send shut -1 32 pipes 1" in lines and "send shut nosig -1 32 pipes 1" in lines
    assert "poll closed 0x2015" in lines and "read closed 0" in lines and "lseek -1 29 pipes 3" in lines
    assert "link socket:[" in lines and lines[-2:] == ["child 4 ping", "parent 4 pong"]


def _socket_lines(text: str) -> list[str]:
    """The socket calls of a trace, a call another thread's lines split joined again
    (`<unfinished ...>`, `<... recvfrom resumed>`), spacing normalised."""
    pending: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        m = PREFIX.match(line)
        pid, rest = (m.group(1) or m.group(2), line[m.end():]) if m else ("", line)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>")
            continue
        if rest.startswith("<... "):
            rest = pending.pop(pid, "") + rest.split("resumed>", 1)[1]
        if SOCKET_CALL.match(rest):
            out.append(re.sub(r"0x7ff[0-9a-f]+", "ADDR", " ".join(rest.split())))
    return out


@pytest.mark.skipif(not NATIVE_STRACE, reason="needs strace")
def test_socketpair_strace_as_natively(prog, tmp_path):
    """`vmsim run --trace` writes the socket calls as this machine's strace does."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--trace", "--", str(prog)],
                           cwd=tmp_path, env=env, capture_output=True, timeout=600)
    log = tmp_path / "native.strace"
    subprocess.run(["strace", "-f", "-o", str(log), str(prog)], cwd=tmp_path, env=env, capture_output=True,
                   timeout=60)
    native = _socket_lines(log.read_text())
    assert len(native) == 31
    assert _socket_lines(model.stderr.decode()) == native
