"""The clocks a program reads: kernel/time/timekeeping.c and posix-timers.c
(clock_gettime, clock_getres, gettimeofday, time), over a virtual clock.

Real time would make two runs of a program differ; the model's clock is virtual: it
starts at a fixed boot moment and advances by `tick` nanoseconds at every reading, so
every run reads the same times and each clock strictly increases, as a program may
assume of CLOCK_MONOTONIC.
"""

from __future__ import annotations

from ..errors import EINVAL, kerr

#: include/uapi/linux/time.h clock ids
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME_ID = 2
CLOCK_THREAD_CPUTIME_ID = 3
CLOCK_MONOTONIC_RAW = 4
CLOCK_REALTIME_COARSE = 5
CLOCK_MONOTONIC_COARSE = 6
CLOCK_BOOTTIME = 7
CLOCK_REALTIME_ALARM = 8
CLOCK_BOOTTIME_ALARM = 9
CLOCK_TAI = 11

NSEC_PER_SEC = 1_000_000_000
#: the coarse clocks' resolution: a jiffy at CONFIG_HZ=250 (the reference machine's)
TICK_NSEC = NSEC_PER_SEC // 250
#: the clocks that count from boot rather than from the epoch
_SINCE_BOOT = frozenset({CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE,
                         CLOCK_BOOTTIME})
_CPU_TIME = frozenset({CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID})
_EPOCH = frozenset({CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI})


class Timekeeper:
    """The Kernel's clocks. Invariant: `elapsed` (ns since boot) only grows, by `tick`
    at each reading; CLOCK_REALTIME is `boot_realtime` + elapsed, the monotonic and
    boot clocks `boot_uptime` + elapsed, the CPU-time clocks elapsed."""

    def __init__(self, boot_realtime: int = 1_700_000_000 * NSEC_PER_SEC,
                 boot_uptime: int = 100 * NSEC_PER_SEC, tick: int = 1000) -> None:
        self.boot_realtime = boot_realtime
        self.boot_uptime = boot_uptime
        self.tick = tick
        self.elapsed = 0

    def read(self, clockid: int) -> int:
        """posix_get_*(): the clock's time in ns; EINVAL for no such clock (the alarm
        clocks too: the reference machine has no RTC alarm; a negative id, a CPU clock
        of another task, is not modelled)."""
        if clockid in _SINCE_BOOT:
            base = self.boot_uptime
        elif clockid in _EPOCH:
            base = self.boot_realtime
        elif clockid in _CPU_TIME:
            base = 0
        else:
            raise kerr(EINVAL)
        self.elapsed += self.tick
        return base + self.elapsed

    @staticmethod
    def resolution(clockid: int) -> int:
        """clock_getres(): 1 ns for the high-resolution clocks, a jiffy for the
        coarse ones; EINVAL for no such clock."""
        if clockid in (CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE):
            return TICK_NSEC
        if clockid in _SINCE_BOOT | _EPOCH | _CPU_TIME:
            return 1
        raise kerr(EINVAL)

    def uptime(self) -> int:
        """Seconds since boot (sysinfo's), without advancing the clock."""
        return (self.boot_uptime + self.elapsed) // NSEC_PER_SEC
