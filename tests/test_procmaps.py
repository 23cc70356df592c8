"""Starting the model from a real /proc/PID/maps (+ smaps) dump: Kernel.spawn(maps=).

The dumps come from this test process itself (a real Linux process), so the expected
text is the kernel's own."""

import pytest

import vmsim
from vmsim.fs.procmaps import MapsError


def real_dump():
    with open("/proc/self/maps") as m, open("/proc/self/smaps") as s:
        return m.read(), s.read()


def test_maps_dump_round_trips_byte_for_byte():
    maps, smaps = real_dump()
    p = vmsim.Kernel(pkeys=False).spawn(maps=maps, smaps=smaps)
    assert p.maps() == maps
    p.mm.validate()


def test_vmflags_come_from_smaps():
    maps, smaps = real_dump()
    p = vmsim.Kernel(pkeys=False).spawn(maps=maps, smaps=smaps)
    real = [line.split()[1:] for line in smaps.splitlines() if line.startswith("VmFlags:")]
    assert [v.vmflags for v in p.vmas()] == real[:-1]       # the last is [vsyscall]


def test_restored_process_keeps_working():
    maps, smaps = real_dump()
    p = vmsim.Kernel(pkeys=False).spawn(maps=maps, smaps=smaps)
    heap = [v for v in p.vmas() if v.name == "[heap]"][0]
    assert p.brk(0) == heap.end
    a = p.mmap(0, 4096, vmsim.PROT_READ | vmsim.PROT_WRITE,
               vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
    p.write(a, b"ok")
    assert p.read(a, 2) == b"ok"
    stack = [v for v in p.vmas() if v.name == "[stack]"][0]
    assert a < stack.start
    p.mm.validate()


@pytest.mark.parametrize("text, line, reason", [
    ("nonsense\n", 1, "not a /proc/PID/maps line"),
    ("00001000-00000000 r--p 00000000 00:00 0 \n", 1, "bad range"),
    ("00002000-00003000 r--p 00000000 00:00 0 \n00001000-00002000 r--p 00000000 00:00 0 \n",
     2, "out of order"),
    ("00001000-00002001 r--p 00000000 00:00 0 \n", 1, "bad range"),
])
def test_bad_dumps_name_file_and_line(text, line, reason):
    with pytest.raises(MapsError) as err:
        vmsim.Kernel().spawn(maps=text, maps_path="dump.maps")
    assert str(err.value).startswith(f"dump.maps:{line}: ")
    assert reason in str(err.value)


def test_vma_views_carry_the_maps_fields():
    maps, smaps = real_dump()
    p = vmsim.Kernel(pkeys=False).spawn(maps=maps, smaps=smaps)
    for view, line in zip(p.vmas(), maps.splitlines(), strict=False):  # [vsyscall]: no view
        fields = line.split()
        major, minor = (int(x, 16) for x in fields[3].split(":"))
        assert (view.offset, view.dev, view.inode) == (int(fields[2], 16), (major, minor),
                                                        int(fields[4])), line
