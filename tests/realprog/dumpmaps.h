/* Dump /proc/self/maps and /proc/self/smaps with raw syscalls and a static buffer, so
 * the dump itself changes no mapping. Shared by mmapseq.c and dumpmaps.c (vmsim tests). */
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char vmsim_buf[1 << 20];

static void vmsim_dump(const char *what, const char *out_path)
{
	long fd = syscall(SYS_openat, AT_FDCWD, what, O_RDONLY);
	long n = 0, r;
	if (fd < 0)
		return;
	while ((r = syscall(SYS_read, fd, vmsim_buf + n, sizeof(vmsim_buf) - n)) > 0)
		n += r;
	syscall(SYS_close, fd);
	long out = syscall(SYS_openat, AT_FDCWD, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		return;
	syscall(SYS_write, out, vmsim_buf, n);
	syscall(SYS_close, out);
}

/* start: smaps first, then maps (the replay starts after the maps dump);
 * end: maps (the replay ends at it). */
static void vmsim_snapshot(const char *prefix, const char *tag)
{
	char path[4096];
	size_t l = strlen(prefix);
	if (l > 4000)
		return;
	memcpy(path, prefix, l);
	strcpy(path + l, tag);
	strcat(path, ".smaps");
	vmsim_dump("/proc/self/smaps", path);
	strcpy(path + l, tag);
	strcat(path, ".maps");
	vmsim_dump("/proc/self/maps", path);
}
