"""The JSON Lines trace format (docs/trace-format.md): reading, validation, writing."""

from __future__ import annotations

import io
import json

import pytest

from vmsim import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from vmsim.arch.x86.sgx import defs
from vmsim.drivers.sgx import uapi as sgx
from vmsim.trace.demo import demo_trace_path
from vmsim.trace.format import (
    Record,
    TraceError,
    dumps_trace,
    parse_jsonl,
    record_to_json,
    write_trace,
)
from vmsim.trace.load import load_trace, read_trace


def test_symbolic_and_numeric_values():
    t = parse_jsonl(
        '{"vmsim_trace": 1}\n'
        '{"pid": 7, "call": "mmap", "args": ["NULL", "2*PAGE_SIZE", "PROT_READ|PROT_WRITE",'
        ' "MAP_PRIVATE|MAP_ANONYMOUS", -1, 0], "ret": "0x7f0000000000"}\n'
        '{"call": "mmap", "args": [0, 8192, 3, 34, -1, 0], "ret": 139637976727552}\n')
    a, b = t.records
    assert a.args == [0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0]
    assert a.args == b.args and a.ret == b.ret == 0x7F0000000000
    assert a.pid == 7 and b.pid is None and a.line == 2


def test_openat_and_aliases_fold():
    t = parse_jsonl('{"call": "openat", "args": ["/dev/sgx_enclave", "O_RDWR"], "ret": 3}\n'
                    '{"call": "exit_group", "args": [0]}\n')
    assert [r.call for r in t.records] == ["open", "exit"]
    assert t.records[0].args == ["/dev/sgx_enclave", 2, 0]
    assert t.records[1].unknown_result


def test_sgx_structs_decoded():
    line = {"call": "ioctl", "args": [3, "SGX_IOC_ENCLAVE_ADD_PAGES", {
        "src": "0x7f0000000000", "offset": "0x2000", "length": 4096,
        "secinfo": "SGX_SECINFO_REG|SGX_SECINFO_R|SGX_SECINFO_X",
        "flags": "SGX_PAGE_MEASURE", "count": 0, "data": {"hex": "cc", "size": 4096}}],
        "ret": 0}
    (rec,) = parse_jsonl(json.dumps(line)).records
    fd, cmd, arg = rec.args
    assert cmd == sgx.SGX_IOC_ENCLAVE_ADD_PAGES
    assert arg["secinfo"] == defs.SGX_SECINFO_REG | defs.SGX_SECINFO_R | defs.SGX_SECINFO_X
    assert arg["flags"] == sgx.SGX_PAGE_MEASURE
    assert arg["data"] == b"\xcc" + bytes(4095)
    # a bare pointer (what strace shows) is kept as a number
    (rec,) = parse_jsonl('{"call": "ioctl", "args": [3, "0x4008a402", "0x7ffc4d1e2ab0"]}').records
    assert rec.args == [3, sgx.SGX_IOC_ENCLAVE_INIT, 0x7FFC4D1E2AB0]


def test_round_trip_demo_trace():
    t = load_trace(demo_trace_path())
    assert t.maps and t.comment and len(t.records) > 20
    again = parse_jsonl(dumps_trace(t.records, t.maps, t.comment))
    assert [(r.call, r.args, r.ret, r.err, r.pid) for r in again.records] == \
        [(r.call, r.args, r.ret, r.err, r.pid) for r in t.records]
    assert again.maps == t.maps


def test_writer_is_readable_json_lines():
    recs = [Record("mprotect", [0x7F0000001000, 4096, 7], pid=1, err="EACCES"),
            Record("brk", [0], pid=1, ret=0x555555560000),
            Record(None, pid=1, event="signal", signal="SIGSEGV", text="--- SIGSEGV {} ---")]
    buf = io.StringIO()
    write_trace(recs, buf)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0] == {"vmsim_trace": 1}
    assert lines[1]["args"] == ["0x7f0000001000", 4096, "PROT_READ|PROT_WRITE|PROT_EXEC"]
    assert lines[1]["err"] == "EACCES" and lines[2]["ret"] == "0x555555560000"
    assert lines[3]["event"] == "signal"
    assert record_to_json(recs[0])["call"] == "mprotect"


def test_detects_strace_text():
    t = read_trace("mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n")
    assert t.source == "strace" and t.records[0].ret == 0x7F0000000000


@pytest.mark.parametrize("text,why", [
    ('{"call": "mmap"}', "takes 6 arguments"),
    ('{"call": "brk", "args": [0], "err": "EINVAL", "ret": 0}', "not both"),
    ('{"call": "brk", "args": ["PROT_FOO"]}', "unknown name"),
    ('{"event": "boom"}', "unknown event"),
])
def test_errors_name_the_line(text, why):
    with pytest.raises(TraceError) as ei:
        parse_jsonl('{"vmsim_trace": 1}\n\n' + text, "t.jsonl")
    assert str(ei.value).startswith("t.jsonl:3: ") and why in str(ei.value)


def test_execve_strings_iovec_and_recorded_header_round_trip():
    """argv/envp, process_madvise's iovec and a recorded run's header survive
    write_trace and parse_jsonl."""
    recs = [Record("execve", ["/bin/true"], 1, 0, argv=["true"], envp=["A=1"]),
            Record("process_madvise", [4, [(0x7F0000000000, 4096)], 1, 20, 0], 1, 4096),
            Record(None, pid=2, event="superseded")]
    buf = io.StringIO()
    write_trace(recs, buf, header={"exec_maps": "x\n", "exit_maps": "y\n", "pkeys": False,
                                   "skipped": {"read": 3}})
    t = parse_jsonl(buf.getvalue())
    assert t.records[0].argv == ["true"] and t.records[0].envp == ["A=1"]
    assert t.records[1].args[1] == [(0x7F0000000000, 4096)]
    assert t.records[2].event == "superseded"
    assert (t.exec_maps, t.exit_maps, t.exit_smaps, t.pkeys, t.skipped) == \
        ("x\n", "y\n", None, False, {"read": 3})
