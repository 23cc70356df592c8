"""A short tour of the model: `python -m vmsim.demo`.

Maps three pages, splits them with mprotect, merges them back, faults a page,
and shows what the kernel would print and refuse at each step.
"""

import vmsim
from vmsim import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE


def step(title: str, p) -> None:
    print(f"--- {title}")
    print(p.maps(), end="")


def main() -> None:
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    a = p.mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    step(f"mmap(NULL, 3 pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) = {a:#x}", p)
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
    step("mprotect(middle page, PROT_READ): the VMA splits in three", p)
    try:
        p.write(a + PAGE_SIZE, b"x")
    except vmsim.Fault as fault:
        print(f"--- write to the read-only page: {fault.signal} {fault.code} at {fault.addr:#x}")
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    step("mprotect(middle page, PROT_READ|PROT_WRITE): merged back into one VMA", p)
    try:
        p.mprotect(a, 4 * PAGE_SIZE, PROT_READ)
    except OSError as err:
        print(f"--- mprotect over a hole at the end: {err.strerror} "
              "(errno {}), though the mapped part already changed:".format(err.errno))
        print(p.maps(), end="")
    p.mm.validate()


if __name__ == "__main__":
    main()
