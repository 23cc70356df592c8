"""The `vmsim` command as users run it: a subprocess, its output and exit status; and
its argument errors, each one line `vmsim CMD: reason` with exit status 2."""

import argparse
import os
import subprocess
import sys

import pytest

from vmsim.cli.main import build_parser, main

GOOD = os.path.join(os.path.dirname(__file__), "data", "good_small.jsonl")


def vmsim(*args, input=None):
    return subprocess.run([sys.executable, "-m", "vmsim", *args], capture_output=True,
                          text=True, input=input, timeout=300)


def test_bare_vmsim_runs_the_demo():
    r = vmsim()
    assert r.returncode == 0, r.stderr
    assert "verdict: the model agrees with every recorded call" in r.stdout
    assert "why: SGX: page" in r.stdout and "was added with r-x, rwx was asked" in r.stdout
    assert r.stdout.rstrip().endswith("[vsyscall]")


def test_demo_is_what_bare_vmsim_runs(capsys):
    assert main([]) == 0
    bare = capsys.readouterr()
    assert main(["demo"]) == 0
    assert capsys.readouterr() == bare


def test_tour():
    r = vmsim("tour")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("--- mmap(NULL, 3 pages, PROT_READ|PROT_WRITE, "
                               "MAP_PRIVATE|MAP_ANONYMOUS) = 0x")
    assert "--- mprotect(middle page, PROT_READ): the VMA splits in three\n" in r.stdout
    assert "--- write to the read-only page: SIGSEGV SEGV_ACCERR at 0x" in r.stdout
    assert "merged back into one VMA" in r.stdout
    assert "over a hole at the end: Cannot allocate memory (errno 12)" in r.stdout
    assert r.stdout.rstrip().endswith("[vsyscall]")


def test_help_lists_every_command():
    r = vmsim("--help")
    assert r.returncode == 0
    for cmd in ("diff", "demo", "replay", "maps", "sgx", "tour"):
        assert cmd in r.stdout


@pytest.mark.parametrize("argv", [["demo"], ["replay"], ["maps"], ["diff"], ["sgx"],
                                  ["sgx", "measure"], ["sgx", "sign"], ["tour"]])
def test_every_command_has_help(argv, capsys):
    assert main([*argv, "--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: vmsim {' '.join(argv)} ") and err == ""


def _parsers(ap):
    """ap and every subparser under it."""
    yield ap
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_argument_and_command_is_described():
    for ap in _parsers(build_parser()):
        assert ap.description, ap.prog
        for action in ap._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(a.help for a in action._choices_actions), ap.prog
            else:
                assert action.help, (ap.prog, action.dest)


BAD_USAGE = [
    (["nosuch"], "vmsim: argument COMMAND: invalid choice: 'nosuch' (choose from"),
    (["--bogus"], "vmsim: the following arguments are required: COMMAND"),
    (["demo", "--bogus"], "vmsim demo: unrecognized arguments: --bogus"),
    (["demo", "--form", "tree"], "vmsim demo: argument --form: invalid choice: 'tree'"),
    (["replay"], "vmsim replay: the following arguments are required: TRACE"),
    (["replay", GOOD, "--placement", "sideways"],
     "vmsim replay: argument --placement: invalid choice: 'sideways'"),
    (["replay", "/nonexistent/t.jsonl"],
     "vmsim replay: /nonexistent/t.jsonl: cannot read: No such file or directory"),
    (["maps"], "vmsim maps: give a TRACE, a --maps FILE, or both"),
    (["maps", GOOD, "extra"], "vmsim maps: unrecognized arguments: extra"),
    (["diff"], "vmsim diff: give SCENARIO files or --fuzz N"),
    (["diff", "--fuzz", "1", "--seed", "abc"], "vmsim diff: argument --seed: invalid int value: 'abc'"),
    (["diff", "--fuzz", "-1"], "vmsim diff: --fuzz N must be >= 0"),
    (["diff", "--state", "sometimes", "a.scn"], "vmsim diff: argument --state: invalid choice"),
    (["sgx"], "vmsim sgx: the following arguments are required: TOOL"),
    (["sgx", "frobnicate"], "vmsim sgx: argument TOOL: invalid choice: 'frobnicate'"),
    (["sgx", "measure"], "vmsim sgx measure: the following arguments are required: IMAGE"),
    (["sgx", "sign", "e.img", "-o", "e.sigstruct"],
     "vmsim sgx sign: give exactly one of --key and --generate-key"),
    (["sgx", "sign", "e.img", "--key", "k.pem"],
     "vmsim sgx sign: the following arguments are required: -o/--output"),
    (["tour", "extra"], "vmsim tour: unrecognized arguments: extra"),
]


@pytest.mark.parametrize("argv,message", BAD_USAGE, ids=[" ".join(a) for a, _ in BAD_USAGE])
def test_bad_usage_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # nothing may be written, but if it were
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(message), err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [("nosuch",), ("diff", "--fuzz", "1", "--seed", "abc"),
                                  ("replay",), ("replay", "/nonexistent"), ("sgx",),
                                  ("sgx", "sign", "e.img", "-o", "e.sigstruct")])
def test_bad_usage_from_the_command_line(args):
    r = vmsim(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmsim"), r.stderr


def test_sgx_measure_of_a_declarative_image(tmp_path):
    image = tmp_path / "e.encl"
    image.write_text("size = 0x2000\nssa_frame_size = 1\n")
    r = vmsim("sgx", "measure", str(image))
    assert r.returncode == 0, r.stderr
    # spec/sgx-driver.md §4.5 vector V0: ECREATE only, size 0x2000, one SSA page
    assert "9e197c8837c6d65632dbdd59cd7df4f1a25b68d8e4e5eb6ca3b20b05311fecb8" in r.stdout
