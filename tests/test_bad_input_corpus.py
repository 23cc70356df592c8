"""A seeded bad-input corpus (issue #9 section 2): real inputs the project has -- strace
logs of tests/realprog/mmapseq.c, the JSON Lines demo trace, the recorded divergence
scenarios, a maps and an smaps dump, a declarative enclave image, an enclave ELF, a
signing key (tests/data/corpus/README.md) -- mutated by our own seeded mutator
(truncate, duplicate, splice, flip bytes, huge numbers, deep nesting, long operator
chains, long runs without blanks, NULs, invalid UTF-8, header fields out of range, or
the whole file replaced by /dev/zero, a directory, a FIFO, nothing).

Every input goes through the CLI entry point, `vmsim.cli.main.main(argv)`, in-process,
in two worker processes (one per core) whose address space is capped (RLIMIT_AS), each
input under a time limit (SIGALRM). Each must get its result (status 0 or 1, nothing on
stderr) or exactly one line on stderr naming the input, `FILE:LINE: reason` (status 2),
and never a traceback. `vmsim diff` parses its scenarios and then needs the host-kernel
oracle: the workers stub the oracle out, so a scenario that parses answers 3 ("the
oracle cannot run here") -- its parse is what this corpus tests. A maps dump the CLI
accepts must also give a model state that passes `validate()`. A handful of inputs
run again through a real `python -m vmsim` to check the exit status and stderr there.

VMSIM_CORPUS_SEED and VMSIM_CORPUS_SIZE choose another corpus (to explore; the default
one runs in CI).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS_DIR = os.path.join(HERE, "data", "corpus")
GOOD_TRACE = os.path.join(HERE, "data", "good_small.jsonl")

SEED = int(os.environ.get("VMSIM_CORPUS_SEED", "9"))
SIZE = int(os.environ.get("VMSIM_CORPUS_SIZE", "320"))
#: seconds one input may take (the SIGALRM limit is twice this)
INPUT_SECONDS = 5.0
#: the address space of a worker process
WORKER_MEMORY = 1 << 30
WORKERS = 2

#: the seeds of each kind: the files the project already has
SEEDS = {
    "strace": [os.path.join(SEEDS_DIR, "mmapseq.strace"),
               os.path.join(SEEDS_DIR, "mmapseq-stderr.strace")],
    "jsonl": [os.path.join(ROOT, "vmsim", "trace", "data", "sgx_demo.jsonl"), GOOD_TRACE],
    "maps": [os.path.join(SEEDS_DIR, "start.maps")],
    "smaps": [os.path.join(SEEDS_DIR, "start.smaps")],
    "scenario": sorted(os.path.join(HERE, "divergences", f)
                       for f in os.listdir(os.path.join(HERE, "divergences")))[:12],
    "image": [os.path.join(SEEDS_DIR, "encl.img")],
    "elf": [os.path.join(SEEDS_DIR, "encl.elf")],
    "key": [os.path.join(SEEDS_DIR, "key.pem")],
}
#: how many of the inputs are of each kind (sign is slow: few keys)
SHARE = {"strace": 7, "jsonl": 6, "maps": 4, "smaps": 2, "scenario": 4, "image": 4,
         "elf": 3, "key": 1}


def argv_for(kind: str, path: str, n: int, out_dir: str) -> list[str]:
    """The command line that reads `path` as an input of this kind."""
    if kind in ("strace", "jsonl"):
        return ["replay", path, "--form", "none"] if n % 3 else ["maps", path]
    if kind == "maps":
        return ["maps", "--maps", path] if n % 2 else \
            ["replay", GOOD_TRACE, "--maps", path, "--form", "none"]
    if kind == "smaps":
        return ["maps", "--maps", SEEDS["maps"][0], "--smaps", path]
    if kind == "scenario":
        return ["diff", path]
    if kind in ("image", "elf"):
        return ["sgx", "measure", path] + (["-v"] if n % 2 else [])
    assert kind == "key"
    return ["sgx", "sign", SEEDS["image"][0], "--key", path,
            "-o", os.path.join(out_dir, f"{n}.sigstruct")]


# --------------------------------------------------------------------------- mutations

_NUMBER = re.compile(rb"(?<![0-9A-Za-z_])(?:0x[0-9a-fA-F]+|[0-9]+)")
HUGE_NUMBERS = [b"9" * 5000, b"0x" + b"f" * 5000, b"1" * 4400, b"18446744073709551616",
                b"340282366920938463463374607431768211456", b"(1<<127)*4", b"-" * 3000 + b"1",
                b"0" * 5000 + b"1", b"99999999999999999999999"]


def _number_span(rng: random.Random, data: bytes) -> tuple[int, int] | None:
    spans = [m.span() for m in _NUMBER.finditer(data, 0, 200_000)]
    return rng.choice(spans) if spans else None


def _replace_number(rng: random.Random, data: bytes, make) -> bytes:
    span = _number_span(rng, data)
    if span is None:
        return data + make(b"1")
    a, b = span
    return data[:a] + make(data[a:b]) + data[b:]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def truncate(rng, data, other):
    return data[:rng.randrange(len(data) + 1)]


def cut_line(rng, data, other):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
    return b"\n".join(lines)


def duplicate(rng, data, other):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    return b"\n".join(lines[:i] + [lines[i]] * rng.choice([2, 3, 500, 5000]) + lines[i:])


def drop_or_swap(rng, data, other):
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if rng.random() < 0.5:
        del lines[i]
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def splice(rng, data, other):
    return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]


def flip(rng, data, other):
    b = bytearray(data)
    for _ in range(rng.choice([1, 2, 8, 64])):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def huge_number(rng, data, other):
    return _replace_number(rng, data, lambda _: rng.choice(HUGE_NUMBERS))


def deep_nesting(rng, data, other):
    depth = rng.choice([100, 3000, 20000])
    if rng.random() < 0.5:
        return _replace_number(rng, data, lambda n: b"(" * depth + n + b")" * depth)
    return _replace_number(rng, data, lambda n: b"[" * depth + n + b"]" * depth)


def operator_chain(rng, data, other):
    op = rng.choice([b"+", b"-", b"*", b"|", b"<<"])
    return _replace_number(rng, data, lambda n: op.join([n] + [b"1"] * 30000))


def _insert(rng, data, piece):
    i = rng.randrange(len(data) + 1)
    return data[:i] + piece + data[i:]


def long_run(rng, data, other):
    return _insert(rng, data, rng.choice([b"A", b"/", b"a/", b"(", b"<", b"x="]) * 200_000)


def long_blanks(rng, data, other):
    return _insert(rng, data, rng.choice([b" ", b"\t"]) * 200_000)


def nul(rng, data, other):
    return _insert(rng, data, b"\0" * rng.choice([1, 1, 4096]))


def bad_utf8(rng, data, other):
    return _insert(rng, data, rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]))


def long_word(rng, data, other):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(i, rng.choice([b"x", b"'x", b'"x', b"segment a data=", b"size = "])
                 + b"9" * 300_000)
    return b"\n".join(lines)


def elf_field(rng, data, other):
    """An ELF header or program header field set to an edge value."""
    b = bytearray(data)
    phoff = struct.unpack_from("<Q", b, 32)[0] if len(b) >= 40 else 64
    fields = [(32, "Q"), (40, "Q"), (54, "H"), (56, "H"), (58, "H"), (60, "H"), (62, "H")]
    fields += [(phoff + i * 56 + off, "Q") for i in range(3) for off in (8, 32, 40)]
    fields += [(phoff + i * 56 + 4, "I") for i in range(3)]
    at, fmt = rng.choice(fields)
    limit = {"H": 0xFFFF, "I": 0xFFFFFFFF, "Q": (1 << 64) - 1}[fmt]
    value = rng.choice([0, 1, limit, limit // 2, 1 << 30 if fmt != "H" else 0xFF00,
                        len(data) + 1, 0x1001])
    if at + struct.calcsize(fmt) <= len(b):
        struct.pack_into("<" + fmt, b, at, value)
    return bytes(b)


#: special files replacing the input: marked, made by the corpus builder
SPECIAL = ("/dev/zero", "<dir>", "<fifo>", "<empty>")


def special(rng, data, other):
    return rng.choice(SPECIAL)


TEXT_MUTATIONS = [truncate, cut_line, duplicate, drop_or_swap, splice, flip, huge_number,
                  deep_nesting, operator_chain, long_run, long_blanks, nul, bad_utf8,
                  special]
MUTATIONS = {kind: TEXT_MUTATIONS for kind in SEEDS}
MUTATIONS["image"] = TEXT_MUTATIONS + [long_word]
MUTATIONS["elf"] = [truncate, splice, flip, elf_field, elf_field, elf_field, nul, special]
MUTATIONS["key"] = [truncate, cut_line, duplicate, splice, flip, nul, bad_utf8, special]


@dataclass
class Case:
    id: str
    kind: str
    path: str
    argv: list[str]


def build_corpus(out_dir: str, seed: int = SEED, size: int = SIZE) -> list[Case]:
    """`size` mutated inputs written under out_dir, the same for the same seed."""
    rng = random.Random(seed)
    total = sum(SHARE.values())
    os.mkdir(os.path.join(out_dir, "a-directory"))
    fifo = os.path.join(out_dir, "a-fifo")
    os.mkfifo(fifo)
    with open(os.path.join(SEEDS_DIR, "encl.hex"), "rb") as src, \
            open(os.path.join(out_dir, "encl.hex"), "wb") as dst:
        dst.write(src.read())                   # what encl.img's hex= names
    contents = {kind: [open(p, "rb").read() for p in paths] for kind, paths in SEEDS.items()}
    cases = []
    for kind, share in SHARE.items():
        for _ in range(max(1, size * share // total)):
            n = len(cases)
            seeds = contents[kind]
            data, other = rng.choice(seeds), rng.choice(seeds)
            mutate = rng.choice(MUTATIONS[kind])
            mutant = mutate(rng, data, other)
            if mutant == "<dir>":
                path = os.path.join(out_dir, "a-directory")
            elif mutant == "<fifo>":
                path = fifo
            elif isinstance(mutant, str) and mutant != "<empty>":
                path = mutant
            else:
                ext = os.path.splitext(SEEDS[kind][0])[1]
                path = os.path.join(out_dir, f"{n:03d}-{kind}-{mutate.__name__}{ext}")
                with open(path, "wb") as f:
                    f.write(b"" if mutant == "<empty>" else mutant)
            cases.append(Case(f"{n:03d}-{kind}-{mutate.__name__}", kind, path,
                              argv_for(kind, path, n, out_dir)))
    return cases


# --------------------------------------------------------------------------- the worker

class _InputTimeout(BaseException):
    pass


@dataclass
class Result:
    id: str
    status: int | None
    stderr: str
    seconds: float
    error: str | None = None            # a traceback out of main(), a timeout


def _no_oracle():
    from vmsim.oracle import OracleUnavailable
    raise OracleUnavailable("stubbed out by the bad-input corpus")


def _validate_maps(case: Case) -> str | None:
    """For a maps/smaps input the CLI accepted: the model state it gives must be valid."""
    from vmsim.kernel import Kernel
    from vmsim.syscalls.inputs import read_text
    maps_path = case.path if case.kind == "maps" else SEEDS["maps"][0]
    smaps_path = case.path if case.kind == "smaps" else None
    try:
        maps = read_text(maps_path)             # a FIFO, too: what the CLI read
        smaps = read_text(smaps_path) if smaps_path else None
        Kernel().spawn(maps=maps, smaps=smaps).mm.validate()
    except AssertionError as exc:
        return f"accepted, but validate() fails: {exc}"
    return None


def run_case(case: Case) -> Result:
    """Run one input through main() in this process."""
    from vmsim.cli.main import main
    err = io.StringIO()
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, 2 * INPUT_SECONDS)
    try:
        with open(os.devnull, "w") as out, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            status = main(case.argv)
        error = _validate_maps(case) if case.kind in ("maps", "smaps") and status == 0 \
            else None
    except _InputTimeout:
        status, error = None, f"timed out after {2 * INPUT_SECONDS}s"
    except BaseException:                       # whatever escaped main()
        status, error = None, traceback.format_exc(limit=-6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return Result(case.id, status, err.getvalue(), time.perf_counter() - t0, error)


def worker(cases_file: str, results_file: str) -> None:
    """Run the cases of cases_file in this process, capped, writing one JSON result per
    line to results_file as it goes."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))

    def alarm(signum, frame):
        raise _InputTimeout()

    signal.signal(signal.SIGALRM, alarm)
    import vmsim.cli.diff
    vmsim.cli.diff.Oracle = _no_oracle
    cases = [Case(**c) for c in json.load(open(cases_file))]
    with open(results_file, "w") as out:
        for case in cases:
            out.write(json.dumps(asdict(run_case(case))) + "\n")
            out.flush()


# --------------------------------------------------------------------------- the test

ONE_LINE = re.compile(r"(vmsim[a-z ]*: )?[^:\n]+(:\d+)?: [^\n]+")


def check(case: Case, r: Result) -> str | None:
    """What is wrong with the result of this input, or None."""
    if r.error is not None:
        return r.error
    allowed = {2, 3} if case.kind == "scenario" else {0, 1, 2}
    if r.status not in allowed:
        return f"exit status {r.status}"
    lines = r.stderr.splitlines()
    if "Traceback" in r.stderr:
        return f"a traceback on stderr: {r.stderr[-800:]}"
    if r.status in (2, 3):
        if len(lines) != 1 or not ONE_LINE.fullmatch(lines[0]):
            return f"stderr is not one `FILE:LINE: reason` line: {r.stderr[:800]!r}"
        if r.status == 2 and case.path not in lines[0] and \
                os.path.basename(case.path) not in lines[0]:
            return f"the reason does not name the input: {lines[0][:300]!r}"
    elif lines:
        return f"status {r.status} with stderr {r.stderr[:300]!r}"
    if r.seconds > INPUT_SECONDS:
        return f"took {r.seconds:.1f}s"
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("corpus"))
    cases = build_corpus(out)
    t0 = time.perf_counter()
    shards = [cases[i::WORKERS] for i in range(WORKERS)]
    procs = []
    for i, shard in enumerate(shards):
        cases_file, results_file = (os.path.join(out, f"worker{i}.{x}.json")
                                    for x in ("cases", "results"))
        with open(cases_file, "w") as f:
            json.dump([asdict(c) for c in shard], f)
        procs.append((subprocess.Popen([sys.executable, __file__, "--worker", cases_file,
                                        results_file], cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
                      results_file))
    results: dict[str, Result] = {}
    for proc, results_file in procs:
        output, _ = proc.communicate(timeout=600)
        if os.path.exists(results_file):
            for line in open(results_file):
                r = Result(**json.loads(line))
                results[r.id] = r
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    return cases, results, time.perf_counter() - t0


def test_corpus_is_seeded_and_varied(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = build_corpus(str(tmp_path / "a")), build_corpus(str(tmp_path / "b"))
    assert [c.id for c in a] == [c.id for c in b]
    assert all(open(x.path, "rb").read() == open(y.path, "rb").read()
               for x, y in zip(a, b, strict=True) if os.path.isfile(x.path))
    assert len(a) >= 300
    assert {c.kind for c in a} == set(SEEDS)
    used = {c.id.split("-", 2)[2] for c in a}
    assert {f.__name__ for fs in MUTATIONS.values() for f in fs} <= used


def test_every_input_gets_its_result_or_one_line(corpus):
    cases, results, seconds = corpus
    bad = []
    for case in cases:
        r = results.get(case.id)
        why = "no result (the worker died)" if r is None else check(case, r)
        if why is not None:
            bad.append(f"{case.id} ({' '.join(case.argv)[:120]}): {why}")
    assert not bad, f"{len(bad)} of {len(cases)} inputs:\n" + "\n".join(bad[:20])
    assert seconds < 60, f"the corpus took {seconds:.0f}s"


def test_both_outcomes_occur(corpus):
    """The corpus is neither all refused nor all accepted."""
    cases, results, _ = corpus
    statuses = {results[c.id].status for c in cases if c.id in results}
    assert {0, 2} <= statuses


def test_a_handful_through_a_real_process(corpus):
    cases, results, _ = corpus
    picked = {}
    for case in cases:
        r = results.get(case.id)
        if r is not None and r.status in (0, 1, 2) and case.kind not in picked and \
                (case.kind != "scenario" or r.status == 2):
            picked[case.kind] = case
    assert len(picked) >= 6
    for case in picked.values():
        p = subprocess.run([sys.executable, "-m", "vmsim", *case.argv], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        r = results[case.id]
        assert p.returncode == r.status, (case.id, p.stderr)
        assert "Traceback" not in p.stderr
        assert len(p.stderr.splitlines()) == (1 if r.status == 2 else 0), p.stderr


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.path.insert(0, ROOT)
    worker(sys.argv[2], sys.argv[3])
