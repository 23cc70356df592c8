"""Bad input: every truncated, garbled or hostile trace and maps file of
tests/data/bad_inputs/ gets exactly one line `PROG: FILE:LINE: reason` on stderr,
exit status 2, and no traceback (EXPECTED.tsv gives the line and part of the reason);
and each reproducer of issue #9 section 2 (hangs, tracebacks, impossible states
accepted, unbounded memory) gets its result or that line, in bounded time and memory.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc

import pytest

from vmsim.cli.main import main

HERE = os.path.dirname(__file__)
CORPUS = os.path.join(HERE, "data", "bad_inputs")
GOOD = os.path.join(CORPUS, "..", "good_small.jsonl")


def _expected():
    out = []
    with open(os.path.join(CORPUS, "EXPECTED.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, lineno, why = line.rstrip("\n").split("\t")
            out.append((name, int(lineno), why))
    return out


#: strace lines of the corpus that are not bad input since issue #10: a flag name vmsim
#: does not know (a newer kernel's) keeps the line undecoded, and the log replays
UNDECODED = {"unknown_flag.strace"}
LISTED = _expected()
CASES = [c for c in LISTED if c[0] not in UNDECODED]


def test_every_corpus_file_is_listed():
    listed = {c[0] for c in LISTED}
    present = {f for f in os.listdir(CORPUS) if f != "EXPECTED.tsv"}
    assert listed == present


def _argv(name):
    path = os.path.join(CORPUS, name)
    if name.endswith(".maps"):
        return [GOOD, "--maps", path], path
    return [path], path


@pytest.mark.parametrize("name,lineno,why", CASES, ids=[c[0] for c in CASES])
def test_bad_input_replay(capsys, name, lineno, why):
    argv, path = _argv(name)
    status = main(["replay", *argv])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    msg = lines[0]
    assert "Traceback" not in err
    where = f"{path}:{lineno}: " if not name.startswith("header_maps") else f":{lineno}: "
    assert where in msg, msg
    assert why in msg, msg


@pytest.mark.parametrize("name,lineno,why", [c for c in CASES if c[0].endswith(".maps")],
                         ids=[c[0] for c in CASES if c[0].endswith(".maps")])
def test_bad_maps_for_maps_command(capsys, name, lineno, why):
    path = os.path.join(CORPUS, name)
    assert main(["maps", "--maps", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}:{lineno}: " in err[0] and why in err[0]


@pytest.mark.parametrize("name", sorted(UNDECODED))
def test_unknown_names_in_strace_keep_the_line_undecoded(capsys, name):
    path = os.path.join(CORPUS, name)
    why = next(c[2] for c in LISTED if c[0] == name)
    assert main(["replay", path, "--form", "none"]) == 0
    out = capsys.readouterr().out
    assert "skipped:" in out and f"not decoded (mmap: unknown name '{why}')" in out


def test_bad_input_json_mode(capsys):
    path = os.path.join(CORPUS, "truncated_line.strace")
    assert main(["replay", path, "--json"]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and f"{path}:2:" in json.loads(out[0])["error"]


@pytest.mark.parametrize("name", ["deep_nesting.jsonl", "binary.jsonl", "garbled.strace",
                                  "latin1.maps"])
def test_no_traceback_from_the_command_line(name):
    argv, _ = _argv(name)
    r = subprocess.run([sys.executable, "-m", "vmsim", "replay", *argv],
                       capture_output=True, text=True, cwd=os.path.join(HERE, ".."))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_file_and_usage(capsys, tmp_path):
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: cannot read" in capsys.readouterr().err
    assert main(["replay"]) == 2
    assert main(["replay", GOOD, "--placement", "sideways"]) == 2
    assert main(["maps"]) == 2


def test_good_small_trace_is_fine(capsys):
    assert main(["replay", GOOD, "--form", "none"]) == 0


# --------------------------------------------------------------------------- issue #9 §2
# Each reproducer of issue #9 section 2: hostile input gets its result or one line
# `FILE:LINE: reason` (exit 2), in bounded time and memory.

def _one_line(capsys, status, argv, where=None, why=None):
    """Run `vmsim ARGV` in-process: the status, one stderr line naming where and why."""
    assert main(argv) == status
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    if where is not None:
        assert where in lines[0], lines[0]
    if why is not None:
        assert why in lines[0], lines[0]
    return lines[0]


def _timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


@pytest.mark.parametrize("line", [
    "a" * 400_000,                                   # _STRACE_MSG: 200 KB took 56 s
    "a/" * 200_000,
    "mmap(" + " " * 400_000 + "x",                    # a run of blanks (TIMING, UNFINISHED)
    "/strace:" * 50_000,
    "mmap(" + "3<" * 100_000,
], ids=["no-spaces", "slashes", "blanks", "strace-words", "decorations"])
def test_long_lines_parse_in_linear_time(tmp_path, capsys, line):
    f = tmp_path / "long.strace"
    f.write_text(line + "\n")
    _, seconds = _timed(_one_line, capsys, 2, ["replay", str(f)], f"{f}:1: ")
    assert seconds < 3, f"{seconds:.1f}s for a {len(line)}-character line"


def test_many_unfinished_lines_are_linear(tmp_path, capsys):
    f = tmp_path / "unfinished.strace"
    f.write_text("mmap(NULL, 4096\n" + "<unfinished ...>\n" * 200_000)
    status, seconds = _timed(main, ["replay", str(f), "--form", "none"])
    assert status == 0 and "skipped: mmap 1" in capsys.readouterr().out   # never resumed
    assert seconds < 5


@pytest.mark.parametrize("expr", [
    "(" * 5000 + "4096" + ")" * 5000,                # RecursionError before
    "+".join(["1"] * 4095) + "+1",
    "-" * 5000 + "-4096",
    "4096*" + "*".join(["1"] * 20000),
], ids=["deep-parentheses", "long-sum", "unary-minus-chain", "long-product"])
def test_deep_nesting_and_long_chains_get_their_result(tmp_path, capsys, expr):
    """Parsed without recursion: the call is replayed and gets its verdict."""
    f = tmp_path / "deep.strace"
    f.write_text(f"mmap(NULL, {expr}, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = ?\n")
    status, seconds = _timed(main, ["replay", str(f), "--form", "none"])
    out, err = capsys.readouterr()
    assert status == 0 and err == "" and "unchecked" in out
    assert seconds < 5
    j = tmp_path / "deep.jsonl"
    j.write_text(json.dumps({"call": "munmap", "args": ["0x7f0000000000", expr]}) + "\n")
    assert main(["replay", str(j), "--form", "none"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("expr,why,where", [
    ("1" * 5000, "does not fit in 128 bits", "all"),  # past Python's int-conversion limit
    ("0x" + "f" * 5000, "does not fit in 128 bits", "all"),
    ("*".join(["0xffffffffffffffff"] * 20000), "does not fit in 128 bits", "all"),
    ("(1<<127)*4", "does not fit in 128 bits", "scenario"),  # strace: `1<` is a -y decoration
    ("((1+2)", "missing ')'", "scenario"),
    ("(0x1000", "missing ')'", "jsonl"),        # in a call line, the call's ')' is missing
    ("0x1000)", "trailing ')'", "jsonl"),
    ("(", "unexpected end", "jsonl"),
    ("1<<", "unexpected end", "jsonl"),
])
def test_bad_numbers_name_the_line(tmp_path, capsys, expr, why, where):
    """In a JSON Lines argument and result; a scenario argument and expected result; an
    strace argument and result: FILE:LINE and the reason, before anything runs."""
    for text in (json.dumps({"call": "munmap", "args": [expr, 4096]}),
                 json.dumps({"call": "munmap", "args": [4096, 4096], "ret": expr})):
        f = tmp_path / "t.jsonl"
        f.write_text(text + "\n")
        _one_line(capsys, 2, ["replay", str(f)], f"{f}:1: ", why)
    if where in ("all", "scenario"):
        f = tmp_path / "t.scn"
        for text in (f"munmap({expr}, 4096)\n", f"munmap(W, 4096) = {expr}\n"):
            f.write_text(text)
            _one_line(capsys, 2, ["diff", str(f)], f"{f}:1: ", why)
    if where == "all":
        f = tmp_path / "t.strace"
        for text in (f"munmap({expr}, 4096) = 0\n", f"munmap(0x1000, 4096) = {expr}\n"):
            f.write_text(text)
            _one_line(capsys, 2, ["replay", str(f)], f"{f}:1: ", why)


def test_smaps_errors_name_the_smaps_file(tmp_path, capsys):
    maps = tmp_path / "start.maps"
    maps.write_text("7f0000000000-7f0000002000 rw-p 00000000 00:00 0 \n")
    for bad in ("Anonymous:\n", "Anonymous: x kB\n", "Anonymous: " + "9" * 5000 + " kB\n"):
        smaps = tmp_path / "start.smaps"
        smaps.write_text(maps.read_text() + bad)
        for argv in (["replay", GOOD], ["maps"]):
            _one_line(capsys, 2, [*argv, "--maps", str(maps), "--smaps", str(smaps)],
                      f"{smaps}:2: ", "expected `Anonymous: N kB`")


def test_a_maps_path_under_a_regular_file(tmp_path, capsys):
    path = os.path.join(CORPUS, "path_under_file.maps")
    _one_line(capsys, 2, ["maps", "--maps", path], f"{path}:2: ", "Not a directory")
    _one_line(capsys, 2, ["replay", GOOD, "--maps", str(tmp_path / "file" / "x")],
              "cannot read")


@pytest.mark.parametrize("name", ["above_task_size.maps", "above_2_64.maps"])
def test_impossible_maps_are_refused_not_replayed(capsys, name):
    """Accepted before, leaving a state that failed validate()."""
    path = os.path.join(CORPUS, name)
    _one_line(capsys, 2, ["maps", "--maps", path], f"{path}:1: ")


@pytest.mark.parametrize("text", ["", "\n\n  \n"], ids=["empty", "blank"])
def test_an_empty_trace_is_bad_input(tmp_path, capsys, text):
    """A 0-call replay with status 0 would hide a trace written elsewhere."""
    for name in ("t.strace", "t.jsonl"):
        f = tmp_path / name
        f.write_text(text)
        _one_line(capsys, 2, ["replay", str(f)], f"{f}: ", "empty file")


def test_a_trace_of_skipped_calls_is_not_empty(tmp_path, capsys):
    f = tmp_path / "t.strace"
    f.write_text('read(3, "", 0) = 0\n+++ exited with 0 +++\n')
    assert main(["replay", str(f), "--form", "none"]) == 0
    assert "skipped: read 1" in capsys.readouterr().out


def _special_inputs(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"/dev/zero": "binary data", str(tmp_path): "Is a directory",
            str(fifo): None}


@pytest.mark.parametrize("command", ["replay", "maps", "smaps", "diff", "measure", "key"])
def test_special_files_are_read_bounded(tmp_path, capsys, command):
    """/dev/zero, a directory, a FIFO nobody writes to: one line, quickly, whatever
    the input is for (a FIFO reads as an empty file)."""
    image = tmp_path / "i.img"
    image.write_text("segment a perms=R pages=1\n")
    maps = tmp_path / "m.maps"
    maps.write_text("7f0000000000-7f0000001000 r--p 00000000 00:00 0 \n")
    for path, why in _special_inputs(tmp_path).items():
        argv = {"replay": ["replay", path], "maps": ["maps", "--maps", path],
                "smaps": ["maps", "--maps", str(maps), "--smaps", path],
                "diff": ["diff", path], "measure": ["sgx", "measure", path],
                "key": ["sgx", "sign", str(image), "--key", path,
                        "-o", str(tmp_path / "o.sig")]}[command]
        assert main(argv) in (0, 2, 3)      # 3: an empty scenario reaches the oracle
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) <= 1 and not any("Traceback" in e for e in err)
        if why is not None:
            assert len(err) == 1 and path in err[0] and why in err[0], err


def test_blob_limit_is_per_trace(tmp_path, capsys):
    """40 legal 64 MiB blobs needed 2.5 GiB: the limit is for the trace, and is
    checked before a blob is built."""
    blob = {"hex": "", "size": 64 << 20}
    line = json.dumps({"call": "ioctl", "args": [3, "SGX_IOC_ENCLAVE_ADD_PAGES",
                                                 {"data": blob}], "ret": 0})
    f = tmp_path / "blobs.jsonl"
    f.write_text("\n".join([line] * 40) + "\n")
    peak = _peak_memory(_one_line, capsys, 2, ["replay", str(f)], f"{f}:2: ", "too large")
    assert peak < 300 << 20


def _peak_memory(fn, *args):
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("count", ["1<<40", "1<<127", "0x100000000000000000000"])
def test_pwrite64_count_is_bounded_when_parsed(tmp_path, capsys, count):
    f = tmp_path / "w.scn"
    f.write_text(f'open("/tmp/f1", O_RDWR|O_CREAT, 0600) = 3\npwrite64(3, "A", {count}, 0) = 1\n')
    peak = _peak_memory(_one_line, capsys, 2, ["diff", str(f)], f"{f}:2: ", "pwrite64 count")
    assert peak < 64 << 20


def test_cli_usage_errors_are_one_line(capsys):
    _one_line(capsys, 2, ["diff", "--fuzz", "1", "--seed", "abc"], "vmsim diff: ", "abc")
    _one_line(capsys, 2, ["--bogus"], "vmsim: ")
    _one_line(capsys, 2, ["nosuch"], "vmsim: ", "nosuch")


def test_image_segment_is_checked_before_it_is_built(tmp_path, capsys):
    """1 GiB was built before the range check refused it."""
    f = tmp_path / "big.img"
    f.write_text("size = 0x2000\nsegment a pages=0x40000 perms=R\n")
    peak = _peak_memory(_one_line, capsys, 2, ["sgx", "measure", str(f)], f"{f}:2: ",
                        "does not fit in size 0x2000")
    assert peak < 16 << 20
    f.write_text("segment a pages=0x40000 perms=R\n")          # no size: the image limit
    _one_line(capsys, 2, ["sgx", "measure", str(f)], f"{f}:1: ", "256 MiB")


def test_image_with_a_long_word_is_linear(tmp_path, capsys):
    """shlex took 46 s for a 1 MB word."""
    f = tmp_path / "word.img"
    for word in ("x" * 1_000_000, '"' + "x" * 1_000_000, "segment a perms=R data=" + "0" * 1_000_000):
        f.write_text("size = 0x1000\n" + word + "\n")
        _, seconds = _timed(_one_line, capsys, 2, ["sgx", "measure", str(f)], f"{f}:2: ")
        assert seconds < 3


def test_image_hex_file_is_read_bounded(tmp_path, capsys):
    f = tmp_path / "hex.img"
    f.write_text("segment a perms=R hex=/dev/zero\n")
    _one_line(capsys, 2, ["sgx", "measure", str(f)], f"{f}:1: ", "binary data")


def _elf(p_filesz):
    """A minimal ELF64 with one PT_LOAD (the TCS) claiming p_filesz bytes."""
    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 6, 0x1000, 0x1000, 0x1000, p_filesz, 0x1000, 0x1000)
    return (hdr + phdr).ljust(0x2000, b"\1")


@pytest.mark.parametrize("p_filesz", [(1 << 64) - 1, 1 << 40, 300 << 20])
def test_elf_p_filesz_is_bounded(tmp_path, capsys, p_filesz):
    f = tmp_path / "encl.elf"
    f.write_bytes(_elf(p_filesz))
    peak = _peak_memory(_one_line, capsys, 2, ["sgx", "measure", str(f)], f"{f}: ",
                        "256 MiB")
    assert peak < 16 << 20


def test_heap_size_is_bounded(tmp_path, capsys):
    f = tmp_path / "encl.elf"
    f.write_bytes(_elf(0x1000))
    _one_line(capsys, 2, ["sgx", "measure", str(f), "--heap-size", "0x100000000"], f"{f}: ",
              "heap size 0x100000000")
    assert main(["sgx", "measure", str(f), "--heap-size", "0x2000"]) == 0
    assert capsys.readouterr().out.startswith("MRENCLAVE ")


@pytest.mark.parametrize("header", [
    struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 0, 0xFFFF, 64, 0, 0),
    struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 64, 0, 64, 56, 1, 0, 0, 0),
    struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0xFFFFFFFFFFFF0000, 0, 0, 64, 56, 0xFFFF,
                64, 0, 0),
], ids=["phentsize-0", "shentsize-0", "phoff-past-eof"])
def test_elf_header_tables_are_checked_first(tmp_path, capsys, header):
    """A zero entry size or a table past the end made pyelftools loop up to 2^64."""
    f = tmp_path / "encl.elf"
    f.write_bytes((b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + header).ljust(0x2000, b"\0"))
    _one_line(capsys, 2, ["sgx", "measure", str(f)], f"{f}: ", "not a valid ELF file")
