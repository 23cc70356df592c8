/* vmsim oracle executor: runs memory-map calls on the host kernel.
 *
 * A persistent server.  It reads one request per line on fd 0 and answers on
 * fd 1 (moved to fds 1000/1001 at start so a scenario's first open() gets fd 3,
 * as in a fresh process with 0,1,2 open).  It runs under
 * personality(ADDR_NO_RANDOMIZE) (re-executing itself if needed) so its own
 * layout is deterministic, uses no malloc (so the break is untouched: brk == start_brk)
 * and allocates its buffers with mmap (top-down, far above the scenario window).
 *
 * Requests:
 *   RUN <stateflag> <op>;<op>;...   fork a fresh child, run the ops in it, answer
 *                                   one result line per op (and the window state
 *                                   after each op when stateflag is 1, else once at
 *                                   the end), then "DONE".
 *   SESSION <stateflag>              fork a child that reads one op per line until
 *                                   "END"; each op is answered as in RUN.
 *   QUIT
 * Ops: S <nr> <a1> ... <a6>  raw syscall | open <hexpath> <flags> <mode> |
 *   mkdir <hexpath> <mode> | unlink <hexpath> | pwrite <fd> <hexdata> <off> |
 *   mount <hexpath> <flags> | fork | touch <addr> r|w|x | peek <addr> |
 *   poke <addr> <byte> | pkru <value> | state
 * Results: "R <hex>" success, "E <errno>" failure, "G <signo> <si_code> <hexaddr>"
 *   memory access answered with a signal, "U <errno> <what>" the host does not permit
 *   the call here (mount: no private mount namespace).  State: "V <smaps header line>",
 *   "F <VmFlags>", "K <pkey>" per VMA inside a window, then ".".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define IN_FD 1000
#define OUT_FD 1001

static unsigned long win_lo[2], win_hi[2];
static char *inbuf, *outbuf, *smapsbuf, *scratch;
static size_t inbuf_len, inbuf_pos, outlen;
#define INBUF_SZ (1 << 20)
#define OUTBUF_SZ (1 << 20)
#define SMAPS_SZ (4 << 20)
#define SCRATCH_SZ (1 << 16)

static void flush_out(void) {
    size_t off = 0;
    while (off < outlen) {
        ssize_t r = write(OUT_FD, outbuf + off, outlen - off);
        if (r < 0) { if (errno == EINTR) continue; _exit(3); }
        off += r;
    }
    outlen = 0;
}
static void put(const char *s, size_t n) {
    if (outlen + n > OUTBUF_SZ) flush_out();
    if (n > OUTBUF_SZ) n = OUTBUF_SZ;
    memcpy(outbuf + outlen, s, n);
    outlen += n;
}
static void puts_(const char *s) { put(s, strlen(s)); }
static void puthex(unsigned long v) {
    char b[24]; int i = 23; b[i] = 0;
    do { b[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    b[--i] = 'x'; b[--i] = '0';
    puts_(b + i);
}
static void putdec(long v) {
    char b[24]; int i = 23; int neg = v < 0; unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
    b[i] = 0;
    do { b[--i] = '0' + u % 10; u /= 10; } while (u);
    if (neg) b[--i] = '-';
    puts_(b + i);
}

/* Read one line from IN_FD (own buffer).  Returns NULL on EOF. */
static char *read_line(void) {
    for (;;) {
        char *nl = memchr(inbuf + inbuf_pos, '\n', inbuf_len - inbuf_pos);
        if (nl) {
            char *line = inbuf + inbuf_pos;
            *nl = 0;
            inbuf_pos = nl - inbuf + 1;
            return line;
        }
        if (inbuf_pos > 0) {
            memmove(inbuf, inbuf + inbuf_pos, inbuf_len - inbuf_pos);
            inbuf_len -= inbuf_pos;
            inbuf_pos = 0;
        }
        if (inbuf_len >= INBUF_SZ - 1) _exit(4);
        ssize_t r = read(IN_FD, inbuf + inbuf_len, INBUF_SZ - 1 - inbuf_len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return NULL;
        inbuf_len += r;
    }
}

static unsigned long num(char **p) {
    while (**p == ' ') (*p)++;
    char *end;
    unsigned long v = strtoul(*p, &end, 0);
    *p = end;
    return v;
}
static char *word(char **p) {
    while (**p == ' ') (*p)++;
    char *w = *p;
    while (**p && **p != ' ') (*p)++;
    if (**p) { **p = 0; (*p)++; }
    return w;
}
static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
/* decode hex in place; returns length */
static size_t unhex(char *h) {
    size_t n = 0;
    if (h[0] == '-' && h[1] == 0) { h[0] = 0; return 0; }
    for (size_t i = 0; h[i] && h[i + 1]; i += 2) h[n++] = hexval(h[i]) << 4 | hexval(h[i + 1]);
    h[n] = 0;
    return n;
}

/* ---- memory access with fault catching ---- */
static sigjmp_buf jb;
static volatile int in_access;
static volatile int got_sig, got_code;
static volatile unsigned long got_addr, x_target;
static volatile int x_stage;

static void on_fault(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    if (!in_access) {
        puts_("CRASH "); putdec(sig); puts_(" "); putdec(si->si_code); puts_(" ");
        puthex((unsigned long)si->si_addr); puts_("\n");
        flush_out();
        _exit(97);
    }
    if (sig == SIGTRAP) {
        if (x_stage == 0 && (unsigned long)uc->uc_mcontext.gregs[REG_RIP] == x_target) {
            /* About to execute the first instruction at the target: point every
               register at the scratch area so one instruction of any kind lands there. */
            unsigned long mid = (unsigned long)scratch + SCRATCH_SZ / 2;
            static const int regs[] = {REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI,
                                       REG_RBP, REG_RSP, REG_R8, REG_R9, REG_R10, REG_R11,
                                       REG_R12, REG_R13, REG_R14, REG_R15};
            for (unsigned i = 0; i < sizeof regs / sizeof regs[0]; i++) uc->uc_mcontext.gregs[regs[i]] = mid;
            x_stage = 1;
            return;                       /* TF stays set in the saved flags */
        }
        got_sig = 0;                      /* executed one instruction: success */
        siglongjmp(jb, 1);
    }
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (unsigned long)si->si_addr;
    siglongjmp(jb, 1);
}

static void do_exec_at(unsigned long target) {
    x_target = target;
    x_stage = 0;
    __asm__ volatile(
        "pushfq\n\t"
        "orq $0x100, (%%rsp)\n\t"
        "popfq\n\t"
        "call *%0\n\t"
        : : "r"(target) : "memory");
    for (;;) ;                             /* never reached: the trap handler jumps out */
}

static void access_op(int kind, unsigned long addr, unsigned value) {
    got_sig = 0;
    int val = -1;
    in_access = 1;
    if (sigsetjmp(jb, 1) == 0) {
        if (kind == 'r' || kind == 'R') val = *(volatile unsigned char *)addr;
        else if (kind == 'w') __atomic_fetch_or((unsigned char *)addr, 0, __ATOMIC_SEQ_CST);
        else if (kind == 'p') *(volatile unsigned char *)addr = value;
        else if (kind == 'x') do_exec_at(addr);
    }
    in_access = 0;
    if (got_sig) {
        puts_("G "); putdec(got_sig); puts_(" "); putdec(got_code); puts_(" "); puthex(got_addr); puts_("\n");
    } else if (kind == 'R' && val >= 0) {
        puts_("R "); puthex(val); puts_("\n");
    } else {
        puts_("R 0x0\n");
    }
}

/* ---- window state from /proc/self/smaps ---- */
static void dump_state(void) {
    int fd = open("/proc/self/smaps", O_RDONLY);
    size_t n = 0;
    if (fd >= 0) {
        ssize_t r;
        while (n < SMAPS_SZ - 1 && (r = read(fd, smapsbuf + n, SMAPS_SZ - 1 - n)) > 0) n += r;
        close(fd);
    }
    smapsbuf[n] = 0;
    int inwin = 0;
    char *line = smapsbuf;
    while (line < smapsbuf + n) {
        char *nl = strchr(line, '\n');
        if (!nl) nl = smapsbuf + n;
        char c = line[0];
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
            char *p = line;
            unsigned long s = strtoul(p, &p, 16);
            unsigned long e = strtoul(p + 1, &p, 16);
            inwin = 0;
            for (int w = 0; w < 2; w++)
                if (s < win_hi[w] && e > win_lo[w]) inwin = 1;
            if (inwin) { puts_("V "); put(line, nl - line); puts_("\n"); }
        } else if (inwin && !strncmp(line, "VmFlags:", 8)) {
            puts_("F"); put(line + 8, nl - line - 8); puts_("\n");
        } else if (inwin && !strncmp(line, "ProtectionKey:", 14)) {
            char *p = line + 14;
            puts_("K "); putdec(strtol(p, NULL, 10)); puts_("\n");
        }
        line = nl + 1;
    }
    puts_(".\n");
}

static int unshared;

/* Run one op (the text is modified).  Returns 1 when this process must stop
   reading ops (a fork parent that has waited for its child). */
static int run_op(char *op, int state_each) {
    char *p = op;
    char *name = word(&p);
    long r = 0;
    int handled_result = 0;
    if (!strcmp(name, "S")) {
        unsigned long nr = num(&p), a[6] = {0};
        for (int i = 0; i < 6; i++) a[i] = num(&p);
        r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    } else if (!strcmp(name, "open")) {
        char *path = word(&p); unhex(path);
        unsigned long fl = num(&p), mode = num(&p);
        r = open(path, (int)fl, (mode_t)mode);
    } else if (!strcmp(name, "mkdir")) {
        char *path = word(&p); unhex(path);
        r = mkdir(path, (mode_t)num(&p));
    } else if (!strcmp(name, "unlink")) {
        char *path = word(&p); unhex(path);
        r = unlink(path);
    } else if (!strcmp(name, "pwrite")) {
        int fd = (int)num(&p);
        char *data = word(&p); size_t len = unhex(data);
        r = pwrite(fd, data, len, (off_t)num(&p));
    } else if (!strcmp(name, "mount")) {
        char *path = word(&p); unhex(path);
        unsigned long fl = num(&p);
        if (!unshared) {
            if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
                unshared = 1;
            else { puts_("U "); putdec(errno); puts_(" unshare\n"); handled_result = 1; }
        }
        if (unshared) r = mount("tmpfs", path, "tmpfs", fl, "size=64m");
        else r = 0;
    } else if (!strcmp(name, "fork")) {
        flush_out();
        pid_t pid = fork();
        if (pid > 0) {
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) ;
            if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                puts_("DIED "); putdec(st); puts_("\n");
            }
            return 1;
        }
        r = pid;                          /* 0 in the child, which continues */
    } else if (!strcmp(name, "touch")) {
        unsigned long a = num(&p);
        char *m = word(&p);
        access_op(m[0], a, 0);
        handled_result = 1;
    } else if (!strcmp(name, "peek")) {
        access_op('R', num(&p), 0);
        handled_result = 1;
    } else if (!strcmp(name, "poke")) {
        unsigned long a = num(&p);
        access_op('p', a, (unsigned)num(&p));
        handled_result = 1;
    } else if (!strcmp(name, "pkru")) {
        unsigned long v = num(&p);
#ifdef __PKU__
        __builtin_ia32_wrpkru((unsigned)v);
        r = 0;
#else
        (void)v;
        errno = EOPNOTSUPP; r = -1;
#endif
    } else if (!strcmp(name, "state")) {
        dump_state();
        return 0;
    } else if (!strcmp(name, "nop")) {
        r = 0;
    } else {
        puts_("E 38 unknown-op\n");
        handled_result = 1;
    }
    if (!handled_result) {
        if (r == -1) { puts_("E "); putdec(errno); puts_("\n"); }
        else { puts_("R "); puthex((unsigned long)r); puts_("\n"); }
    }
    if (state_each) dump_state();
    return 0;
}

static void child_setup(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGTRAP, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
}

static void wait_child(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) ;
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        puts_("DIED "); putdec(st); puts_("\n");
    }
}

int main(int argc, char **argv) {
    int pers = personality(0xffffffff);
    if (pers != -1 && !(pers & ADDR_NO_RANDOMIZE) && !getenv("VMSIM_EXECUTOR_NORERUN")) {
        personality(pers | ADDR_NO_RANDOMIZE);
        setenv("VMSIM_EXECUTOR_NORERUN", "1", 1);
        execv("/proc/self/exe", argv);
    }
    if (argc < 5) return 2;
    win_lo[0] = strtoul(argv[1], NULL, 0); win_hi[0] = win_lo[0] + strtoul(argv[2], NULL, 0);
    unsigned long brk0 = syscall(SYS_brk, 0);
    win_lo[1] = strtoul(argv[3], NULL, 0); win_hi[1] = win_lo[1] + strtoul(argv[4], NULL, 0);
    if (win_lo[1] == 0) win_lo[1] = brk0, win_hi[1] += brk0;
    if (dup2(0, IN_FD) < 0 || dup2(1, OUT_FD) < 0) return 2;
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0); dup2(nul, 1);
    if (nul > 2) close(nul);
    for (int fd = 3; fd < 64; fd++) close(fd);
    char *mem = mmap(NULL, INBUF_SZ + OUTBUF_SZ + SMAPS_SZ + SCRATCH_SZ, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 2;
    inbuf = mem; outbuf = mem + INBUF_SZ; smapsbuf = outbuf + OUTBUF_SZ; scratch = smapsbuf + SMAPS_SZ;
    signal(SIGPIPE, SIG_DFL);
    puts_("HELLO "); puthex(brk0); puts_(" "); puthex(win_lo[1]); puts_("\n");
    flush_out();
    for (;;) {
        char *line = read_line();
        if (!line || !strcmp(line, "QUIT")) return 0;
        char *p = line;
        char *cmd = word(&p);
        if (!strcmp(cmd, "RUN")) {
            int state_each = (int)num(&p);
            while (*p == ' ') p++;
            pid_t pid = fork();
            if (pid == 0) {
                child_setup();
                char *op = p;
                int stopped = 0;
                while (op && *op) {
                    char *semi = strchr(op, ';');
                    if (semi) *semi = 0;
                    if (run_op(op, state_each)) { stopped = 1; break; }
                    flush_out();
                    op = semi ? semi + 1 : NULL;
                }
                if (!stopped && !state_each) dump_state();
                flush_out();
                _exit(0);
            }
            if (pid < 0) { puts_("DIED -1\n"); }
            else wait_child(pid);
            puts_("DONE\n");
            flush_out();
        } else if (!strcmp(cmd, "SESSION")) {
            int state_each = (int)num(&p);
            pid_t pid = fork();
            if (pid == 0) {
                child_setup();
                puts_("READY\n");
                flush_out();
                for (;;) {
                    char *op = read_line();
                    if (!op || !strcmp(op, "END")) break;
                    if (run_op(op, state_each)) break;
                    puts_("OK\n");
                    flush_out();
                }
                flush_out();
                _exit(0);
            }
            if (pid < 0) { puts_("DIED -1\n"); }
            else wait_child(pid);
            puts_("DONE\n");
            flush_out();
        } else {
            puts_("ERR unknown request\n");
            flush_out();
        }
    }
}
