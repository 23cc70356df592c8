/* LD_PRELOAD shim for the vmsim real-program tests: snapshot the address space when the
 * program starts (after ld.so loaded everything) and when it exits, into
 * $VMSIM_MAPS_OUT{start,end}.{maps,smaps}. */
#include <stdlib.h>
#include "dumpmaps.h"

__attribute__((constructor)) static void vmsim_start(void)
{
	const char *p = getenv("VMSIM_MAPS_OUT");
	if (p) {
		vmsim_snapshot(p, "start");
		syscall(SYS_brk, 0);    /* shows the program break in the trace */
	}
}

__attribute__((destructor)) static void vmsim_end(void)
{
	const char *p = getenv("VMSIM_MAPS_OUT");
	if (p)
		vmsim_snapshot(p, "end");
}
