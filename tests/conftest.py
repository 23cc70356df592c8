"""Fixtures shared by the test modules that talk to the host kernel."""

import pytest


@pytest.fixture(scope="module")
def oracle():
    """The host kernel as an oracle (vmsim.oracle); skips with the reason if it
    cannot run here."""
    from vmsim import oracle as O
    try:
        o = O.Oracle()
    except O.OracleUnavailable as exc:
        pytest.skip(f"oracle unavailable: {exc}")
    yield o
    o.close()


@pytest.fixture(scope="module")
def kw():
    """vmsim.Kernel keyword arguments that match the host."""
    from vmsim import oracle as O
    return O.kernel_kwargs()
