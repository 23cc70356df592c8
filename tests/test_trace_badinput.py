"""Bad input: every truncated, garbled or hostile trace and maps file of
tests/data/bad_inputs/ gets exactly one line `PROG: FILE:LINE: reason` on stderr,
exit status 2, and no traceback (EXPECTED.tsv gives the line and part of the reason).
"""

from __future__ import annotations

import os
import subprocess
import sys

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


CASES = _expected()


def test_every_corpus_file_is_listed():
    listed = {c[0] for c in CASES}
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


def test_bad_input_json_mode(capsys):
    path = os.path.join(CORPUS, "truncated_line.strace")
    assert main(["replay", path, "--json"]) == 2
    import json
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
