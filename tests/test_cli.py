"""The `vmsim` command as users run it: a subprocess, its output and exit status."""

import subprocess
import sys

import pytest


def vmsim(*args, input=None):
    return subprocess.run([sys.executable, "-m", "vmsim", *args], capture_output=True,
                          text=True, input=input, timeout=300)


def test_bare_vmsim_runs_the_demo():
    r = vmsim()
    assert r.returncode == 0, r.stderr
    assert "verdict: the model agrees with every recorded call" in r.stdout
    assert "why: SGX: page" in r.stdout and "was added with r-x, rwx was asked" in r.stdout
    assert r.stdout.rstrip().endswith("[vsyscall]")


def test_help_lists_every_command():
    r = vmsim("--help")
    assert r.returncode == 0
    for cmd in ("diff", "demo", "replay", "maps", "sgx"):
        assert cmd in r.stdout


@pytest.mark.parametrize("args", [("sgx",), ("sgx", "frobnicate"), ("replay", "/nonexistent"),
                                  ("diff",)])
def test_bad_usage_is_one_line_and_exit_2(args):
    r = vmsim(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) >= 1


def test_sgx_measure_of_a_declarative_image(tmp_path):
    image = tmp_path / "e.encl"
    image.write_text("size = 0x2000\nssa_frame_size = 1\n")
    r = vmsim("sgx", "measure", str(image))
    assert r.returncode == 0, r.stderr
    # spec/sgx-driver.md §4.5 vector V0: ECREATE only, size 0x2000, one SSA page
    assert "9e197c8837c6d65632dbdd59cd7df4f1a25b68d8e4e5eb6ca3b20b05311fecb8" in r.stdout
