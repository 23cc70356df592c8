"""`vmsim run` of a program that catches SIGSEGV from guard pages and recovers: a
PROT_NONE page (SEGV_ACCERR), a MADV_GUARD_INSTALL marker (SEGV_MAPERR, 6.13+), and the
stack's guard gap overflowed under a 1 MiB RLIMIT_STACK, caught on an alternate stack;
each time siglongjmp() out of the handler and go on. Output and exit status must equal
the native run under `setarch -R` with the same environment (the recursion depth at the
overflow depends on where the stack starts)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

GUARD_C = r"""
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static sigjmp_buf env;
static volatile char *fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	fault_addr = si->si_addr;
	fault_code = si->si_code;
	siglongjmp(env, 1);
}

/* Touch addr (write if w); report how it went relative to base. */
static void probe(const char *what, char *base, char *addr, int w)
{
	if (sigsetjmp(env, 1) == 0) {
		if (w)
			*(volatile char *)addr = 1;
		else
			(void)*(volatile char *)addr;
		printf("%s: ok\n", what);
	} else {
		printf("%s: SIGSEGV code %d at +%ld\n", what, fault_code, (long)(fault_addr - base));
	}
}

static long depth;
static long recurse(long n)
{
	volatile char pad[4000];
	pad[0] = (char)n;
	depth = n;
	return recurse(n + 1) + pad[0];
}

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigaction(SIGSEGV, &sa, NULL);

	char *base = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(base + pg, pg, PROT_NONE);
	printf("guard install: %d\n", madvise(base + 2 * pg, pg, MADV_GUARD_INSTALL));
	probe("read rw page", base, base + 10, 0);
	probe("read PROT_NONE page", base, base + pg + 20, 0);
	probe("write guard marker", base, base + 2 * pg + 30, 1);
	probe("write past guard", base, base + 3 * pg + 40, 1);
	probe("write again after recovery", base, base + 50, 1);

	/* the stack's guard gap: overflow a 1 MiB stack on an alternate stack, recover */
	stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0 };
	sigaltstack(&ss, NULL);
	struct rlimit rl = { 1 << 20, 1 << 20 };
	setrlimit(RLIMIT_STACK, &rl);
	if (sigsetjmp(env, 1) == 0) {
		recurse(0);
	} else {
		printf("stack overflow caught: code %d, depth %ld\n", fault_code, depth);
	}
	probe("after overflow", base, base + 60, 1);
	return 0;
}
"""

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("setarch") is None:
        pytest.skip("needs gcc and setarch")
    out = tmp_path_factory.mktemp("guard")
    (out / "guard.c").write_text(GUARD_C)
    subprocess.run(["gcc", "-O1", "-o", str(out / "guard"), str(out / "guard.c")],
                   check=True, capture_output=True)
    return out / "guard"


def test_guard_pages_fault_and_the_program_recovers(guard):
    native = subprocess.run(["setarch", "-R", str(guard)], capture_output=True, env=ENV)
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--", str(guard)],
                           capture_output=True, env=ENV)
    assert native.returncode == 0, native.stderr
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)
    lines = model.stdout.decode().splitlines()
    assert lines[:6] == ["guard install: 0", "read rw page: ok",
                         "read PROT_NONE page: SIGSEGV code 2 at +4116",
                         "write guard marker: SIGSEGV code 1 at +8222",
                         "write past guard: ok", "write again after recovery: ok"]
    assert lines[6].startswith("stack overflow caught: code 1, depth ")
    assert lines[7] == "after overflow: ok"
