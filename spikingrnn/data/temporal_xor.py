"""Temporal XOR: a synthetic long-memory classification task, generated locally from a seed.

Each sample is a sequence of ``T = num_steps`` steps (default 200) with two input features per step:

* channel 0: a random bit in {-1, +1} at every step (independent, uniform; mostly noise);
* channel 1: a marker, 1.0 at exactly two steps and 0.0 elsewhere. The first marked step ``t1`` lies in
  the first 10 % of the sequence (``0 <= t1 < ceil(T / 10)``), the second ``t2`` in the last half
  (``ceil(T / 2) <= t2 < T``); both are uniform in their range and drawn per sample.

The label (2 classes) is the XOR of the two marked channel-0 values ``a = x[t1, 0]`` and
``b = x[t2, 0]``: **1 if they differ, 0 if they are equal**. ``t2 - t1 > 0.4 * T`` always (at least 81
steps for T=200), so the answer needs a memory of ``a`` across at least ``0.4 * T`` steps of noise.

Why the recurrent state has to carry the first bit. A model without recurrence computes a hidden
vector ``h_t = f(x_t)`` from the current input only, and ``x_t`` takes only four values: ``(+1, 0)``,
``(-1, 0)``, ``(+1, 1)``, ``(-1, 1)``. The time average ``mean_t h_t`` is therefore
``sum_k (n_k / T) f(v_k)``, a linear function of the counts ``n_k`` of these four input symbols, and so
is any linear readout of it: ``score = alpha * m + beta * u + gamma`` where ``m`` is the number of marked
+1 values (0, 1 or 2) and ``u`` the number of unmarked +1 values (independent of the label). The label is
1 exactly when ``m == 1``: it is not monotone in ``m``, so no threshold on an affine score separates
``m = 1`` from both ``m = 0`` and ``m = 2``. The best such readout counts "at least one marked +1" and is
right for 75 % of the samples (it confuses (+1, +1) with (+1, -1)); chance is 50 %. Getting the
remaining quarter needs ``h_{t2}`` to depend on ``a`` and ``b`` together, i.e. the recurrent state must
hold ``a`` from ``t1`` until ``t2`` (after which ``a XOR b`` can be held and averaged). The same holds
for a readout of the last step alone (a memoryless model sees only ``x_{T-1}``: chance).

Balance: the four combinations ``(a, b)`` appear equally often (counts differ by at most one), so the
classes are balanced (counts differ by at most one) and neither marked value alone predicts the label.

Seeds and split: the training set is generated from ``seed`` and the test set from ``test_seed``
(default 0), on separate random streams (``numpy.random.SeedSequence`` with different spawn keys, so
equal seeds still give different sets). The test set is therefore fixed whatever ``seed`` is: the
training CLI passes its ``--split-seed`` as ``seed``, and runs with different split seeds are scored on
the same test set. The same arguments give bit-identical data on every run. Nothing is downloaded and
no package beyond numpy and torch is needed.

Shapes: ``x [N, T, 2]`` float32 (batch-first, like every dataset of :mod:`spikingrnn.data`), ``y [N]``
int64 in {0, 1}; defaults 4,000 train / 1,000 test.

Temporal recall (``temporal_recall``, :func:`load_temporal_recall`): the same sequences, labelled with
the FIRST marked bit alone (1 if ``a = +1``); the second marked bit is a distractor. Read at the last
step, the answer needs ``a`` held across the ``T - t1 >= 0.9 T`` steps that follow it (a memoryless
model sees only ``x_{T-1}``: chance). An easier long-memory task than the XOR, which needs the memory
and a nonlinear combination of two bits far apart.
"""
from __future__ import annotations

import numpy as np
import torch

from .container import SequenceDataset
from .validation import check_int

DEFAULT_NUM_STEPS = 200
DEFAULT_NUM_TRAIN = 4000
DEFAULT_NUM_TEST = 1000
DEFAULT_TEST_SEED = 0
MIN_NUM_STEPS = 10
_TRAIN_STREAM, _TEST_STREAM = 0, 1

# the four (first, second) marked values; the order makes both classes' counts differ by at most one
_FIRST = np.array([1, 1, -1, -1], dtype=np.int64)
_SECOND = np.array([1, -1, -1, 1], dtype=np.int64)


def marker_ranges(num_steps: int) -> tuple[range, range]:
    """The steps where the first and the second marker may lie: ``range(0, ceil(T/10))`` and
    ``range(ceil(T/2), T)`` for ``T = num_steps``.

    Raises:
        TypeError, ValueError: ``num_steps`` is not an int >= 10.
    """
    num_steps = check_int("num_steps", num_steps, minimum=MIN_NUM_STEPS)
    return range(0, -(-num_steps // 10)), range(-(-num_steps // 2), num_steps)


RULES = ("xor", "first")  # the label: the XOR of the two marked bits, or the first marked bit


def _generate(num_samples: int, num_steps: int, seed_sequence: np.random.SeedSequence, rule: str = "xor"
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.Generator(np.random.PCG64(seed_sequence))
    first_range, second_range = marker_ranges(num_steps)
    combination = rng.permutation(num_samples) % 4            # [N], each of 0..3 equally often (+-1)
    bits = rng.integers(0, 2, size=(num_samples, num_steps), dtype=np.int64) * 2 - 1   # [N, T] in {-1, +1}
    first = rng.integers(first_range.start, first_range.stop, size=num_samples)       # [N]
    second = rng.integers(second_range.start, second_range.stop, size=num_samples)    # [N]
    rows = np.arange(num_samples)
    bits[rows, first] = _FIRST[combination]
    bits[rows, second] = _SECOND[combination]
    x = np.zeros((num_samples, num_steps, 2), dtype=np.float32)
    x[:, :, 0] = bits
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    if rule == "xor":
        y = (_FIRST[combination] != _SECOND[combination]).astype(np.int64)
    else:
        y = (_FIRST[combination] == 1).astype(np.int64)
    markers = np.stack([first, second], axis=1).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(markers)


def generate_temporal_xor(num_samples: int, num_steps: int = DEFAULT_NUM_STEPS, seed: int = 0
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate ``num_samples`` temporal-XOR sequences (see the module's description).

    Args:
        num_samples: ``N``, at least 1.
        num_steps: ``T``, the sequence length, at least 10 (default 200).
        seed: an int >= 0; the same seed gives the same samples on every run.

    Returns:
        ``(x [N, T, 2] float32, y [N] int64, markers [N, 2] int64)``: ``x[..., 0]`` the bits in
        {-1, +1}, ``x[..., 1]`` the markers (1.0 at ``markers[i, 0]`` and ``markers[i, 1]``), ``y`` 1 where
        the two marked bits differ.

    Raises:
        TypeError, ValueError: an argument that is not an int in its range (the message names it).
    """
    num_samples = check_int("num_samples", num_samples, minimum=1)
    num_steps = check_int("num_steps", num_steps, minimum=MIN_NUM_STEPS)
    seed = check_int("seed", seed, minimum=0)
    return _generate(num_samples, num_steps, np.random.SeedSequence(seed))


def load_temporal_recall(num_steps: int = DEFAULT_NUM_STEPS, num_train: int = DEFAULT_NUM_TRAIN,
                         num_test: int = DEFAULT_NUM_TEST, seed: int = 0,
                         test_seed: int = DEFAULT_TEST_SEED) -> SequenceDataset:
    """Temporal recall: the sequences of :func:`load_temporal_xor`, label 1 iff the FIRST marked bit is
    +1 (same arguments, ``info`` and seeds; see the module's description)."""
    return _load(num_steps, num_train, num_test, seed, test_seed, "first")


def load_temporal_xor(num_steps: int = DEFAULT_NUM_STEPS, num_train: int = DEFAULT_NUM_TRAIN,
                      num_test: int = DEFAULT_NUM_TEST, seed: int = 0,
                      test_seed: int = DEFAULT_TEST_SEED) -> SequenceDataset:
    """Temporal XOR: ``x [N, num_steps, 2]`` float32, labels int64 0/1 (1: the two marked bits differ).

    Args:
        num_steps: ``T``, the sequence length, at least 10 (default 200).
        num_train: training-set size (default 4,000).
        num_test: test-set size (default 1,000).
        seed: seed of the training set (the training CLI's ``--split-seed``).
        test_seed: seed of the test set (default 0); the test set does not depend on ``seed``.

    ``info`` holds ``train_markers`` / ``test_markers`` (``[N, 2]`` int64, the two marked steps of each
    sample) besides the arguments.

    Raises:
        TypeError, ValueError: an argument that is not an int in its range (the message names it).
    """
    return _load(num_steps, num_train, num_test, seed, test_seed, "xor")


def _load(num_steps: int, num_train: int, num_test: int, seed: int, test_seed: int, rule: str) -> SequenceDataset:
    num_steps = check_int("num_steps", num_steps, minimum=MIN_NUM_STEPS)
    num_train = check_int("num_train", num_train, minimum=1)
    num_test = check_int("num_test", num_test, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    test_seed = check_int("test_seed", test_seed, minimum=0)
    x_train, y_train, train_markers = _generate(
        num_train, num_steps, np.random.SeedSequence(seed, spawn_key=(_TRAIN_STREAM,)), rule)
    x_test, y_test, test_markers = _generate(
        num_test, num_steps, np.random.SeedSequence(test_seed, spawn_key=(_TEST_STREAM,)), rule)
    first, second = marker_ranges(num_steps)
    name, title, label = (("temporal_xor", "temporal XOR", "label 1 iff the marked bits differ") if rule == "xor" else
                          ("temporal_recall", "temporal recall", "label 1 iff the first marked bit is +1"))
    description = (f"{title}: x [N, {num_steps}, 2] = random bits in {{-1, +1}} and a marker at "
                   f"one step in [{first.start}, {first.stop}) and one in [{second.start}, {second.stop}); {label}; "
                   f"{num_train} train (seed={seed}) / {num_test} test (test_seed={test_seed})")
    return SequenceDataset(x_train, y_train, x_test, y_test, 2, description,
                           info=dict(name=name, seed=seed, test_seed=test_seed, num_steps=num_steps,
                                     train_markers=train_markers, test_markers=test_markers))
