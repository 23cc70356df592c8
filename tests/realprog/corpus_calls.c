/* corpus_calls.c - the calls of a real program that `vmsim record` + `vmsim replay`
 * must reproduce (tests/test_record.py): memfd_create, msync, fcntl F_DUPFD_CLOEXEC, a
 * shared file mapping unlinked while mapped, SysV shm (shmget/shmat/IPC_RMID/shmdt),
 * mlockall/munlockall, pidfd_open + process_madvise, realloc growth (mremap), two
 * threads (CLONE_FILES: one fd table) and fork + exec. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
static void *th(void *a) { void *p = malloc(100000); free(p); int fd = open("/etc/hostname", O_RDONLY); close(fd); return 0; }
int main(void) {
  int fd = memfd_create("vmsim-corpus", MFD_CLOEXEC);
  ftruncate(fd, 65536);
  char *m = mmap(0, 65536, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0);
  msync(m, 4096, MS_SYNC);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 10); close(d);
  int f = open("/tmp/vmsim-corpus-calls", O_RDWR|O_CREAT|O_TRUNC, 0600);
  ftruncate(f, 8192);
  char *q = mmap(0, 8192, PROT_READ, MAP_SHARED, f, 0);
  close(f);
  unlink("/tmp/vmsim-corpus-calls");
  int id = shmget(IPC_PRIVATE, 16384, IPC_CREAT|0600);
  char *s = shmat(id, 0, 0);
  shmctl(id, IPC_RMID, 0);
  char *t = shmat(shmget(IPC_PRIVATE, 8192, IPC_CREAT|0600), 0, 0);
  shmdt(t);
  mlockall(MCL_CURRENT); munlockall();
  int pfd = syscall(SYS_pidfd_open, getpid(), 0);
  char *a = mmap(0, 1<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  struct iovec iov = { a, 1<<20 };
  syscall(SYS_process_madvise, pfd, &iov, 1, MADV_COLD, 0);
  char *r = malloc(1000); for (int i = 0; i < 20; i++) r = realloc(r, 1000 << i);
  pthread_t t1, t2; pthread_create(&t1, 0, th, 0); pthread_create(&t2, 0, th, 0);
  pthread_join(t1, 0); pthread_join(t2, 0);
  if (fork() == 0) { execl("/bin/true", "true", (char*)0); _exit(1); }
  printf("%p %p %p\n", m, q, s);
  return 0;
}
