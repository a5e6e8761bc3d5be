"""``spikingrnn.data.bin_spikes``: the public binning rule of SHD/SSC files and event arrays."""
import numpy as np
import pytest
import torch

from spikingrnn.data import bin_spikes


def test_counts_spikes_per_bin_and_unit():
    times = np.array([0.0, 0.05, 0.05, 0.95, 0.999])
    units = np.array([0, 1, 1, 2, 2])
    x = bin_spikes([(times, units)], num_steps=10, max_time=1.0, num_units=3)
    assert x.shape == (1, 10, 3) and x.dtype == torch.float32
    expected = torch.zeros(1, 10, 3)
    expected[0, 0, 0] = 1
    expected[0, 0, 1] = 2
    expected[0, 9, 2] = 2
    assert torch.equal(x, expected)
    assert torch.equal(bin_spikes([(times, units)], 10, 1.0, 3, binary=True), expected.clamp(max=1))


def test_drops_spikes_outside_the_window():
    times = np.array([-0.1, 1.0, np.nan, 0.5])
    units = np.array([0, 0, 0, 1])
    x = bin_spikes([(times, units)], num_steps=4, max_time=1.0, num_units=2)
    assert x.sum() == 1 and x[0, 2, 1] == 1


def test_several_samples_and_empty_ones():
    x = bin_spikes([(np.array([0.1]), np.array([0])), (np.array([]), np.array([], dtype=np.int64))], 2, 1.0, 1)
    assert x[:, :, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_errors_name_the_sample_and_the_argument():
    with pytest.raises(ValueError, match=r"sample 1 has spike units in \[0, 5\], expected \[0, 3\)"):
        bin_spikes([(np.array([0.1]), np.array([0])), (np.array([0.1, 0.2]), np.array([0, 5]))], 4, 1.0, 3)
    with pytest.raises(ValueError, match="clip 7 has 2 spike times but 1 spike units"):
        bin_spikes([(np.array([0.1, 0.2]), np.array([0]))], 4, 1.0, 3, where=lambda b: "clip 7")
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        bin_spikes([], 0, 1.0, 3)
    with pytest.raises(ValueError, match="num_units must be a positive integer, got 2.5"):
        bin_spikes([], 4, 1.0, 2.5)
    with pytest.raises(ValueError, match="max_time must be a positive finite number of seconds, got -1.0"):
        bin_spikes([], 4, -1.0, 3)
    with pytest.raises(ValueError, match=r"out must be a contiguous float32 tensor of shape \[1, 4, 3\]"):
        bin_spikes([(np.array([0.1]), np.array([0]))], 4, 1.0, 3, out=torch.zeros(1, 4, 2))
