"""Bit rows of spikingrnn.ops.storage: round trip, and a dense result (kernels read it as [K, *shape])."""
from __future__ import annotations

import pytest
import torch

from spikingrnn.ops import storage


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 5), (4, 2), (1, 1), (7, 3)])  # B*H = 15, 8, 1, 21: whole bytes or not
def test_unpack_rows_round_trips_to_a_contiguous_tensor(shape, dtype, fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(storage, "_fast_unpack", None)
    values = (torch.rand(6, *shape) < 0.4).to(dtype)
    restored = storage.unpack_rows(storage.pack_rows(values), shape, dtype)
    assert restored.is_contiguous()
    assert restored.dtype == dtype and torch.equal(restored, values)
