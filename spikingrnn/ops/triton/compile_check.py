"""Compile every Triton kernel of the backend for an NVIDIA GPU, on a machine without one.

The interpreter (``TRITON_INTERPRET=1``) runs the kernels' Python on the CPU: it checks their
arithmetic but not what only the GPU compiler sees (``tl.dot`` shape and dtype rules, shared memory
per program, registers and spills). Triton's wheel ships the NVIDIA backend and ``ptxas``, so a
kernel compiles to a cubin for any architecture without a driver. This module

1. runs the backend's Python launchers on CPU tensors with every kernel launch **recorded instead
   of executed** (:func:`record_launches`): the recorded arguments give each specialization the
   backend really launches (pointer dtypes, constexprs), for float32, bfloat16 and float16 and for
   every cell in both gate forms (``gates="heaviside"`` and ``"sigmoid"``; the vanilla RNN leaky,
   ``leak=β``, and not), ``cell_state``, surrogate, packed or not, low memory or not;
2. compiles each distinct specialization for the target (:func:`compile_launch`) and reads its
   registers, spills and shared memory from the cubin (``cuobjdump --dump-resource-usage``).

The kernels must be built for the GPU (not the interpreter), so this runs in a process where
``TRITON_INTERPRET`` is unset when :mod:`spikingrnn.ops.triton`'s kernel modules are first imported:
``python -m spikingrnn.ops.triton.compile_check --arch 90 80`` prints one table row per specialization
and fails when one does not compile or needs more shared memory than the GPU has
(``tests/test_triton_compile.py`` runs it for sm_90, the H100/H200).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import torch

# shared memory one program may use (opt-in maximum per block), by compute capability
SHARED_LIMIT = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}


class Launch(NamedTuple):
    """One recorded kernel launch, specialized as Triton's launcher would on a GPU: the JIT function,
    its signature (argument types), its constexpr values, the attributes of the other arguments
    (pointer alignment and integers divisible by 16, which let the compiler vectorize) and the compile
    options the launch named (e.g. ``enable_fp_fusion=False``)."""

    kernel: Any  # a triton JITFunction
    signature: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[str, object], ...]
    attrs: tuple[tuple[tuple[int, ...], tuple], ...] = ()
    options: tuple[tuple[str, object], ...] = ()

    @property
    def name(self) -> str:
        return self.kernel.__name__


class Resources(NamedTuple):
    """What one compiled specialization needs per program."""

    registers: int
    spill_bytes: int  # local memory per thread (register spills, local arrays)
    shared_bytes: int  # static + dynamic shared memory
    narrow_offsets: tuple[str, ...] = ()  # 32-bit offsets into whole-sequence tensors (see narrow_offsets)


def _launch_of(kernel, args, kwargs) -> Launch:
    """The specialization Triton's launcher (``JITFunction.run``) computes for these arguments, for
    an sm_90 target (alignment and divisibility do not depend on the architecture)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    backend = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    _, signature, constexprs, attrs = kernel._pack_args(backend, dict(kwargs), bound, specialization, options)
    names = kernel.arg_names
    return Launch(kernel, tuple(signature.items()),
                  tuple((names[path[0]], value) for path, value in sorted(constexprs.items())),
                  tuple(sorted((path, tuple(tuple(a) for a in value)) for path, value in attrs.items())),
                  tuple(sorted((k, v) for k, v in kwargs.items() if k not in names)))


@contextmanager
def record_launches() -> Iterator[list[Launch]]:
    """Within the block, ``kernel[grid](...)`` of any Triton JIT function appends a :class:`Launch` to
    the yielded list and runs nothing (outputs of kernels stay as allocated)."""
    from triton.runtime.jit import JITFunction

    launches: list[Launch] = []
    original = JITFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        launches.append(_launch_of(self, args, kwargs))

    JITFunction.run = run
    try:
        yield launches
    finally:
        JITFunction.run = original


def _tool(name: str) -> str:
    import triton
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def resources(cubin: bytes, kernel_name: str) -> Resources:
    """Registers, local memory and static shared memory of ``kernel_name`` in a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        text = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", file.name], capture_output=True,
                              text=True, check=True).stdout
    match = re.search(rf"Function {re.escape(kernel_name)}:\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", text)
    if match is None:
        raise RuntimeError(f"no resource usage of {kernel_name} in cuobjdump's output:\n{text}")
    registers, stack, shared, local = (int(g) for g in match.groups())
    return Resources(registers, max(stack, local), shared)


# pointer arguments into whole-sequence tensors ([T, B, *] or, for the GEMM, [T * B, *] operands): their
# offsets can pass 2^31 elements on a large GPU, so the kernels must compute them in int64
SEQUENCE_POINTERS = {"xp_ptr", "y_ptr", "pre_ptr", "c_all_ptr", "dy_ptr", "d_pre_ptr", "hp_ptr", "dx_pre_ptr",
                     "dh_pre_ptr", "s_all_ptr", "v_all_ptr"}
GEMM_POINTERS = {"a_ptr", "b_ptr", "c_ptr", "add_ptr"}


def narrow_offsets(ttir: str, pointers) -> list[str]:
    """The ``tt.addptr`` operations of a kernel's TTIR that move one of the ``pointers`` arguments (or a
    block of copies of it) by 32-bit offsets; ``[]`` when all of them are 64-bit."""
    blocks = {m.group(1): m.group(2) for m in re.finditer(r"(%[\w.]+) = tt\.splat %(\w+) : !tt\.ptr", ttir)
              if m.group(2) in pointers}
    problems = []
    for m in re.finditer(r"(%[\w.]+) = tt\.addptr %([\w.]+), %[\w.]+ : ([^,\n]+), ([^\s]+)", ttir):
        base, offset_type = m.group(2), m.group(4)
        moved = blocks.get("%" + base) or (base if base in pointers else None)
        if moved is not None and (offset_type == "i32" or offset_type.endswith("xi32>")):
            problems.append(f"{moved}: {m.group(0)}")
    return problems


def compile_launch(launch: Launch, arch: int) -> Resources:
    """Compile one specialization for ``sm_<arch>`` (no GPU needed); returns what it needs per program."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    attrs = {path: [list(a) for a in value] for path, value in launch.attrs}
    source = ASTSource(launch.kernel, dict(launch.signature), dict(launch.constexprs), attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(launch.options) or None)
    used = resources(compiled.asm["cubin"], compiled.metadata.name)
    pointers = GEMM_POINTERS if launch.name == "_matmul" else SEQUENCE_POINTERS if "persistent" in launch.name else ()
    return used._replace(shared_bytes=used.shared_bytes + compiled.metadata.shared,
                         narrow_offsets=tuple(narrow_offsets(compiled.asm["ttir"], pointers)))


def _surrogates():
    """One instance of every built-in surrogate, in kernel-id order."""
    from ...surrogate import KERNEL_IDS
    return [cls() for cls in sorted(KERNEL_IDS, key=KERNEL_IDS.get)]


def backend_workload(dtypes=(torch.float32, torch.bfloat16, torch.float16)) -> None:
    """Run forward and backward of every cell through the triton backend's launchers on small CPU
    tensors, covering each kernel's constexpr variants: every ``cell_state``, both gate forms (the sigmoid
    form with the accumulating cell), the vanilla RNN leaky and not, every surrogate in both surrogate
    slots, packed and padded batches, low memory or not, TF32 or not, the persistent loops and the
    per-step ones. Meant to run inside :func:`record_launches` (the kernels would need a GPU or the
    interpreter)."""
    from . import persistent
    limit = persistent.PERSISTENT_MAX_HIDDEN
    try:
        for persistent.PERSISTENT_MAX_HIDDEN in (limit, 0):  # persistent loops, then per-step ones
            _run_cells(dtypes, steps=3, batch=4, hidden=32)
            # sizes divisible by 16 or not: Triton specializes integer arguments on that
            _run_cells(dtypes[:1], steps=16, batch=16, hidden=20)
    finally:
        persistent.PERSISTENT_MAX_HIDDEN = limit


def _run_cells(dtypes, steps: int, batch: int, hidden: int) -> None:
    from ...surrogate import kernel_id
    from . import TritonConfig
    from .gru import GRUSequence
    from .gru_sigmoid import GRUSigmoidSequence
    from .leaky_rnn import LeakyRNNSequence
    from .lstm import LSTMSequence
    from .rnn import RNNSequence

    features, proj = 5, 8
    packed_sizes = [batch - t * (batch - 1) // max(steps - 1, 1) for t in range(steps)]  # batch down to 1
    spikes = _surrogates()
    generator = torch.Generator().manual_seed(0)
    case = 0
    for dtype in dtypes:
        def tensor(*shape):
            return torch.rand(*shape, generator=generator).to(dtype).requires_grad_()

        for low_memory in (False, True):
            for packed in (False, True):
                for cell_state in ("clamp", "accumulate", "spike"):
                    first, second = spikes[case % len(spikes)], spikes[(case + 3) % len(spikes)]
                    case += 1
                    first_id, second_id = kernel_id(first), kernel_id(second)
                    assert first_id is not None and second_id is not None  # built-in surrogates all have one
                    # float32 products in TF32 (as on a GPU by default) with the packed batches
                    config = TritonConfig(packed_sizes if packed else None, first_id, first.alpha,
                                          second_id, second.alpha, cell_state, 1.0, True, low_memory,
                                          tf32=packed and dtype == torch.float32)
                    x = tensor(steps, batch, features)
                    # the sigmoid gate form (its cell accumulates): the LSTM's kernels' SIGMOID variant, the GRU's own
                    sigmoid = (False, True) if cell_state == "accumulate" else (False,)
                    for form in sigmoid:
                        form_config = config._replace(sigmoid=form, spike_threshold=0.25)
                        for w_hr in (None, tensor(proj, hidden)):
                            out = hidden if w_hr is None else proj
                            y, h, c = LSTMSequence.apply(x, tensor(batch, out), tensor(batch, hidden),
                                                         tensor(4 * hidden, features), tensor(4 * hidden, out),
                                                         tensor(4 * hidden), tensor(4 * hidden), w_hr, form_config)
                            (y.float().sum() + h.float().sum() + c.float().sum()).backward()
                    cells = [(GRUSequence, 3, config), (RNNSequence, 1, config),
                             (LeakyRNNSequence, 1, config._replace(leak=0.9, spike_threshold=0.25))]
                    if cell_state == "accumulate":
                        cells.append((GRUSigmoidSequence, 3, config._replace(sigmoid=True, spike_threshold=0.25)))
                    for function, gates, cell_config in cells:
                        bias = None if case % 2 else tensor(gates * hidden)  # with and without b_hh
                        y, h = function.apply(x, tensor(batch, hidden), tensor(gates * hidden, features),
                                              tensor(gates * hidden, hidden), tensor(gates * hidden), bias,
                                              cell_config)
                        (y.float().sum() + h.float().sum()).backward()


def distinct(launches) -> list[Launch]:
    """The launches with duplicates (same kernel, signature and constexprs) removed, in order."""
    seen, kept = set(), []
    for launch in launches:
        key = (id(launch.kernel), launch.signature, launch.constexprs, launch.attrs, launch.options)
        if key not in seen:
            seen.add(key)
            kept.append(launch)
    return kept


def covering(launches) -> list[Launch]:
    """A subset with every signature (pointer dtypes) of every kernel, and every value each constexpr of a
    kernel takes in ``launches``, at least once: greedy, in order. Far fewer compilations than
    :func:`distinct` (surrogate pairs, cell rules and dtypes multiply there), since the constexpr
    branches (surrogate formulas, cell rules) compute in float32 whatever the pointers' dtype."""
    covered: set[tuple[object, ...]] = set()
    kept: list[Launch] = []
    for launch in distinct(launches):
        keys: set[tuple[object, ...]] = {(id(launch.kernel), launch.signature, launch.attrs, launch.options)}
        keys |= {(id(launch.kernel), name, repr(value)) for name, value in launch.constexprs}
        if not keys <= covered:
            covered |= keys
            kept.append(launch)
    return kept


def _describe(launch: Launch) -> str:
    pointers = sorted({t[1:] for _, t in launch.signature if t.startswith("*")})
    types = dict(launch.signature)
    names = [name for name, _ in launch.signature]
    divisible = [names[path[0]] for path, value in launch.attrs
                 if value and not types[names[path[0]]].startswith("*")]
    return ("/".join(pointers) + " " + " ".join(f"{n}={v}" for n, v in launch.constexprs)
            + "".join(f" [{n}={v}]" for n, v in launch.options)
            + (f" (16 divides {','.join(divisible)})" if divisible else ""))


def launched_kernels() -> set[str]:
    """Names of the kernels the backend's launchers start (``name[grid](...)`` in the kernel modules'
    source), as opposed to the ``@triton.jit`` helpers the kernels call."""
    import inspect

    from triton.runtime.jit import JITFunction

    from . import (gru, gru_sigmoid, leaky_rnn, lstm, matmul, persistent, persistent_gru, persistent_gru_sigmoid,
                   persistent_leaky_rnn, persistent_rnn, rnn)
    names = set()
    for module in (lstm, persistent, gru, persistent_gru, gru_sigmoid, persistent_gru_sigmoid, rnn, persistent_rnn,
                   leaky_rnn, persistent_leaky_rnn, matmul):
        source = inspect.getsource(module)
        names |= {name for name, value in vars(module).items()
                  if isinstance(value, JITFunction) and re.search(rf"\b{re.escape(name)}\[", source)}
    return names


def check(arches, every: bool = False):
    """Record the backend's launches, compile the :func:`covering` set (``every``: all distinct
    specializations) for each of ``arches``. Yields ``(arch, launch, Resources or None, problem or None)``;
    a problem is a compile error, more shared memory than the architecture has, or 32-bit offsets into a
    whole-sequence tensor (:func:`narrow_offsets`: T * B * 4H passes 2^31 at T = 8192, B = H = 256)."""
    from . import load_kernels
    load_kernels()
    with record_launches() as launches:
        backend_workload()
    chosen = distinct(launches) if every else covering(launches)
    for arch in arches:
        limit = SHARED_LIMIT.get(arch)
        for launch in chosen:
            try:
                used = compile_launch(launch, arch)
            except Exception as error:
                yield arch, launch, None, f"{type(error).__name__}: {error}"
                continue
            problem = None
            if limit is not None and used.shared_bytes > limit:
                problem = f"needs {used.shared_bytes} B of shared memory, sm_{arch} has {limit}"
            elif used.narrow_offsets:
                problem = "32-bit offsets into a whole-sequence tensor: " + "; ".join(used.narrow_offsets[:3])
            yield arch, launch, used, problem


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[90], help="compute capabilities, e.g. 90 80")
    parser.add_argument("--every", action="store_true",
                        help="every distinct specialization recorded, not just a covering set")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        print("unset TRITON_INTERPRET: the kernels must be built for the GPU, not the interpreter", file=sys.stderr)
        return 2
    import datetime

    import triton
    print("# Triton kernels compiled without a GPU\n")
    print(f"`python -m spikingrnn.ops.triton.compile_check --arch {' '.join(map(str, args.arch))}"
          f"{' --every' if args.every else ''}` (Triton {triton.__version__}, torch {torch.__version__}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}): every specialization the triton backend "
          "launches (the launchers run on CPU tensors with each launch recorded, specialized as on a GPU), "
          "compiled to a cubin with Triton's bundled ptxas; registers and spilled bytes per thread, shared "
          "memory per program. No GPU ran these kernels.\n")
    print("| arch | kernel | pointer dtypes, constexprs | registers | spill B/thread | shared B |")
    print("|---|---|---|---|---|---|")
    problems = []
    for arch, launch, used, problem in check(args.arch, args.every):
        if used is not None:
            print(f"| sm_{arch} | {launch.name} | {_describe(launch)} | {used.registers} | {used.spill_bytes} "
                  f"| {used.shared_bytes} |", flush=True)
        if problem is not None:
            problems.append(f"sm_{arch} {launch.name} {_describe(launch)}: {problem}")
    for problem in problems:
        print("FAILED", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
