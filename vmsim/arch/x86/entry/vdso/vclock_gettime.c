/*
 * vmsim vDSO: the time functions (Linux: arch/x86/entry/vdso/vclock_gettime.c over
 * lib/vdso/gettimeofday.c).
 *
 * Linux's read the clocksource and the time data from [vvar_vclock] and [vvar] and
 * enter the kernel only for a clock they cannot read there. The model keeps no clock
 * data in those pages, so each function here is that fallback: the system call, with
 * its result (0 or a negative errno; time() returns the seconds).
 */
#include "vdso_syscall.h"

struct vdso_timespec;		/* struct __kernel_timespec, filled by the kernel */
struct vdso_timeval;		/* struct __kernel_old_timeval */
struct vdso_timezone;		/* struct timezone */

int __vdso_clock_gettime(int clock, struct vdso_timespec *ts);
int __vdso_gettimeofday(struct vdso_timeval *tv, struct vdso_timezone *tz);
long __vdso_time(long *t);
int __vdso_clock_getres(int clock, struct vdso_timespec *res);

int __vdso_clock_gettime(int clock, struct vdso_timespec *ts)
{
	return vdso_syscall(NR_clock_gettime, clock, (long)ts, 0);
}

int __vdso_gettimeofday(struct vdso_timeval *tv, struct vdso_timezone *tz)
{
	return vdso_syscall(NR_gettimeofday, (long)tv, (long)tz, 0);
}

long __vdso_time(long *t)
{
	return vdso_syscall(NR_time, (long)t, 0, 0);
}

int __vdso_clock_getres(int clock, struct vdso_timespec *res)
{
	return vdso_syscall(NR_clock_getres, clock, (long)res, 0);
}

/* the unprefixed names, weak, as Linux's vDSO exports them too */
int clock_gettime(int clock, struct vdso_timespec *ts)
	__attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct vdso_timeval *tv, struct vdso_timezone *tz)
	__attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *t)
	__attribute__((weak, alias("__vdso_time")));
int clock_getres(int clock, struct vdso_timespec *res)
	__attribute__((weak, alias("__vdso_clock_getres")));
