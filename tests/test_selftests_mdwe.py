"""Memory-Deny-Write-Execute (PR_SET_MDWE), ported from Linux 6.18
tools/testing/selftests/mm/mdwe_test.c.

Covers prctl_flags, the consecutive_prctl_flags variants (two_prctls), and the
mdwe fixture tests in its four variants: stock (MDWE off), enabled, inherited
(enabled, then the test runs in a forked child) and not_inherited (enabled with
PR_MDWE_NO_INHERIT, test in a forked child, where MDWE is therefore off).
arm64_BTI is not ported: it is skipped on x86 by the selftest itself.

As in the selftest every mapping is MAP_SHARED|MAP_ANONYMOUS with fd 0 (which
an anonymous mmap ignores) and address 0 (the kernel chooses).  The selftest
only checks "fails"; the errno asserted here (EACCES for an exec gain, EINVAL
for bad prctl arguments, EPERM for trying to relax MDWE) is what the real
6.18.44 kernel of this machine returns.
"""

import errno

import pytest

import vmsim

PAGE = vmsim.PAGE_SIZE
SHARED_ANON = vmsim.MAP_SHARED | vmsim.MAP_ANONYMOUS
R, W, X = vmsim.PROT_READ, vmsim.PROT_WRITE, vmsim.PROT_EXEC
REFUSE = vmsim.PR_MDWE_REFUSE_EXEC_GAIN
NO_INHERIT = vmsim.PR_MDWE_NO_INHERIT


def fails(err, call, *args):
    """call(*args) must fail with errno err."""
    with pytest.raises(OSError) as exc:
        call(*args)
    assert exc.value.errno == err


# --------------------------------------------------------------------------- prctl arguments

def test_prctl_flags():
    # mdwe_test.c: prctl_flags.  Unknown flag bits and non-zero unused
    # arguments are EINVAL, for both PR_SET_MDWE and PR_GET_MDWE.
    p = vmsim.Kernel().spawn()
    fails(errno.EINVAL, p.prctl, vmsim.PR_SET_MDWE, NO_INHERIT, 0, 0, 7)
    for args in [(7, 0, 0, 0), (0, 7, 0, 0), (0, 0, 7, 0), (0, 0, 0, 7)]:
        fails(errno.EINVAL, p.prctl, vmsim.PR_SET_MDWE, *args)
        fails(errno.EINVAL, p.prctl, vmsim.PR_GET_MDWE, *args)
    # None of the failed calls enabled anything.
    assert p.prctl(vmsim.PR_GET_MDWE, 0, 0, 0, 0) == 0


CONSECUTIVE = {
    # name: (first flags, second flags, second call succeeds)
    "can_keep_no_flags": (0, 0, True),
    "can_keep_exec_gain": (REFUSE, REFUSE, True),
    "can_keep_both_flags": (REFUSE | NO_INHERIT, REFUSE | NO_INHERIT, True),
    "cant_disable_mdwe": (REFUSE, 0, False),
    "cant_disable_mdwe_no_inherit": (REFUSE | NO_INHERIT, 0, False),
    "cant_disable_no_inherit": (REFUSE | NO_INHERIT, REFUSE, False),
    "cant_enable_no_inherit": (REFUSE, REFUSE | NO_INHERIT, False),
}


@pytest.mark.parametrize("first,second,should_work", CONSECUTIVE.values(),
                         ids=CONSECUTIVE.keys())
def test_consecutive_prctl_flags_two_prctls(first, second, should_work):
    # mdwe_test.c: consecutive_prctl_flags / two_prctls.  MDWE can be set
    # again with the same flags but never relaxed or changed.
    p = vmsim.Kernel().spawn()
    assert p.prctl(vmsim.PR_SET_MDWE, first, 0, 0, 0) == 0
    if should_work:
        assert p.prctl(vmsim.PR_SET_MDWE, second, 0, 0, 0) == 0
        assert p.prctl(vmsim.PR_GET_MDWE, 0, 0, 0, 0) == second
    else:
        fails(errno.EPERM, p.prctl, vmsim.PR_SET_MDWE, second, 0, 0, 0)
        assert p.prctl(vmsim.PR_GET_MDWE, 0, 0, 0, 0) == first


# --------------------------------------------------------------------------- the mdwe fixture

VARIANTS = {
    # name: (enabled, forked, inherit)
    "stock": (False, False, False),
    "enabled": (True, False, True),
    "inherited": (True, True, True),
    "not_inherited": (True, True, False),
}


class Variant:
    def __init__(self, name):
        self.enabled, self.forked, self.inherit = VARIANTS[name]

    @property
    def exec_gain_refused(self):
        """executable_map_should_fail() in the selftest."""
        return self.enabled and (not self.forked or self.inherit)


@pytest.fixture(params=VARIANTS.keys())
def variant(request):
    return Variant(request.param)


@pytest.fixture
def p(variant):
    """FIXTURE_SETUP(mdwe): enable MDWE if asked, and run in a child if forked."""
    proc = vmsim.Kernel().spawn()
    if variant.enabled:
        flags = REFUSE if variant.inherit else REFUSE | NO_INHERIT
        assert proc.prctl(vmsim.PR_SET_MDWE, flags, 0, 0, 0) == 0
        assert proc.prctl(vmsim.PR_GET_MDWE, 0, 0, 0, 0) == flags
    if variant.forked:
        proc = proc.fork()
        # An inheriting child keeps REFUSE_EXEC_GAIN; NO_INHERIT drops it all.
        expected = REFUSE if variant.inherit else 0
        assert proc.prctl(vmsim.PR_GET_MDWE, 0, 0, 0, 0) == expected
    yield proc
    proc.mm.validate()


def map_shared(p, prot):
    """mmap(NULL, page, prot, MAP_SHARED|MAP_ANONYMOUS, 0, 0)."""
    return p.mmap(0, PAGE, prot, SHARED_ANON, 0, 0)


def perms_at(p, addr):
    return next(v.perms for v in p.vmas() if v.start <= addr < v.end)


def test_mmap_READ_EXEC(p):
    # mdwe_test.c: mdwe / mmap_READ_EXEC: R|X never gains exec over W.
    addr = map_shared(p, R | X)
    assert perms_at(p, addr) == "r-xs"


def test_mmap_WRITE_EXEC(p, variant):
    # mdwe_test.c: mdwe / mmap_WRITE_EXEC
    if variant.exec_gain_refused:
        fails(errno.EACCES, map_shared, p, W | X)
    else:
        addr = map_shared(p, W | X)
        assert perms_at(p, addr) == "-wxs"


def test_mprotect_stay_EXEC(p):
    # mdwe_test.c: mdwe / mprotect_stay_EXEC
    addr = map_shared(p, R | X)
    assert p.mprotect(addr, PAGE, R | X) == 0


def test_mprotect_add_EXEC(p, variant):
    # mdwe_test.c: mdwe / mprotect_add_EXEC
    addr = map_shared(p, R)
    if variant.exec_gain_refused:
        fails(errno.EACCES, p.mprotect, addr, PAGE, R | X)
        assert perms_at(p, addr) == "r--s"
    else:
        assert p.mprotect(addr, PAGE, R | X) == 0
        assert perms_at(p, addr) == "r-xs"


def test_mprotect_WRITE_EXEC(p, variant):
    # mdwe_test.c: mdwe / mprotect_WRITE_EXEC
    addr = map_shared(p, W)
    if variant.exec_gain_refused:
        fails(errno.EACCES, p.mprotect, addr, PAGE, W | X)
        assert perms_at(p, addr) == "-w-s"
    else:
        assert p.mprotect(addr, PAGE, W | X) == 0


def test_mmap_FIXED(p):
    # mdwe_test.c: mdwe / mmap_FIXED.  MAP_FIXED first unmaps the old page, so
    # mapping R|X over a read-only mapping is a new mapping, not an exec gain:
    # allowed in every variant.
    addr = map_shared(p, R)
    got = p.mmap(addr, PAGE, R | X, SHARED_ANON | vmsim.MAP_FIXED, 0, 0)
    assert got == addr
    assert perms_at(p, addr) == "r-xs"
