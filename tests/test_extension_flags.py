"""The C++ build's compiler flags (spikingrnn/ops/cpu/extension.py): the native build is tuned for the CPU,
and asks for full-width AVX-512 loops only where the flag exists (x86), so that GCC on another
architecture does not refuse the native build and fall back to the generic one."""
from __future__ import annotations

import pytest

from spikingrnn.ops.cpu import extension


@pytest.mark.parametrize("machine,wide", [("x86_64", True), ("AMD64", True), ("aarch64", False),
                                          ("arm64", False), ("ppc64le", False)])
def test_native_flags_by_architecture(machine, wide, monkeypatch):
    monkeypatch.setattr(extension.platform, "machine", lambda: machine)
    flags = extension._flags(True)
    assert flags[:3] == ["-O3", "-fopenmp", "-march=native"]
    assert ("-mprefer-vector-width=512" in flags) is wide


def test_generic_flags_are_portable(monkeypatch):
    monkeypatch.setattr(extension.platform, "machine", lambda: "x86_64")
    assert extension._flags(False) == ["-O3", "-fopenmp"]
