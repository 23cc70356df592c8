"""Interpreter scripts ("#!"): fs/binfmt_script.c load_script().

A file that starts with "#!" names its interpreter, and optionally one argument, on
its first line, which must fit in the BINPRM_BUF_SIZE bytes execve reads (a line
without a newline there is accepted only if the interpreter's path visibly ends
before the buffer does: ENOEXEC otherwise). argv[0] is replaced by the interpreter's
path, the argument (everything after the path's first space or tab, trailing blanks
trimmed, as one string) and the script's path; exec.exec_binprm() then runs the
interpreter, which may itself be a script (at most five levels: ELOOP).
"""

from __future__ import annotations

import os

from ..errors import ENOEXEC, kerr
from .exec import LinuxBinprm, copy_string_kernel, do_open_execat, remove_arg_zero


def spacetab(c: int) -> bool:
    return c in b" \t"


def next_non_spacetab(buf: bytes, first: int, last: int) -> int | None:
    """The index of the first byte of buf[first..last] (inclusive) that is neither a
    space nor a tab."""
    for i in range(first, last + 1):
        if not spacetab(buf[i]):
            return i
    return None


def next_terminator(buf: bytes, first: int, last: int) -> int | None:
    """The index of the first space, tab or NUL in buf[first..last] (inclusive)."""
    for i in range(first, last + 1):
        if spacetab(buf[i]) or not buf[i]:
            return i
    return None


def c_string(buf: bytes | bytearray, start: int) -> bytes:
    return bytes(buf[start:buf.index(0, start)])


def parse_interpreter_line(buf: bytes) -> tuple[bytes, bytes | None]:
    """load_script()'s parsing of the "#!" line in bprm->buf: the interpreter's path
    and its optional argument. ENOEXEC if buf does not start with "#!", names no
    interpreter, or may have cut its path short."""
    if buf[:2] != b"#!":
        raise kerr(ENOEXEC)
    buf_end = len(buf) - 1
    head = buf.split(b"\0", 1)[0]               # strnchr() stops at a NUL
    i_end = head.find(b"\n")
    if i_end == -1:
        name = next_non_spacetab(buf, 2, buf_end)
        if name is None or next_terminator(buf, name, buf_end) is None:
            raise kerr(ENOEXEC)                 # all blanks, or the path may be cut short
        i_end = buf_end
    while spacetab(buf[i_end - 1]):
        i_end -= 1
    i_name = next_non_spacetab(buf, 2, i_end)
    if i_name is None or i_name == i_end:
        raise kerr(ENOEXEC)
    i_arg = None
    i_sep = next_terminator(buf, i_name, i_end)
    if i_sep is not None and buf[i_sep]:
        i_arg = next_non_spacetab(buf, i_sep, i_end)
    line = bytearray(buf)
    line[i_end] = 0
    if i_arg is not None:
        assert i_sep is not None                # i_arg is only looked for after i_sep
        line[i_sep] = 0
    return c_string(line, i_name), None if i_arg is None else c_string(line, i_arg)


def load_script(task, bprm: LinuxBinprm) -> None:
    """fs/binfmt_script.c load_script(): the format's load_binary. argv[0] goes
    (remove_arg_zero()); bprm->interp (the path execve was given, or the previous
    script's interpreter), the argument and the interpreter's path are pushed in front
    of the other arguments, and the interpreter is opened as open_exec() does (ENOENT,
    EACCES, ...) to be run next."""
    i_name, i_arg = parse_interpreter_line(bprm.buf)
    remove_arg_zero(bprm)
    copy_string_kernel(bprm, os.fsencode(bprm.interp))
    if i_arg is not None:
        copy_string_kernel(bprm, i_arg)
    copy_string_kernel(bprm, i_name)
    bprm.interp = os.fsdecode(i_name)           # bprm_change_interp()
    bprm.interpreter = do_open_execat(task.kernel, bprm.interp).get()
