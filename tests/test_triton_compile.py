"""Every Triton kernel of the backend compiles for the H100/H200 (sm_90), without a GPU.

The interpreter tests (test_triton_backend.py) check what the kernels compute; this checks what only
the GPU compiler sees: that each specialization the backend launches (float32, bfloat16, float16;
every cell, cell_state, surrogate, packed or not, low memory or not) lowers to a cubin, within the
GPU's shared memory. It runs in a subprocess because the kernels must be built for the GPU there,
while this test session builds them for the interpreter.
"""
import json
import os
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton")
NVIDIA_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
if not all(os.path.exists(os.path.join(NVIDIA_BIN, tool)) for tool in ("ptxas", "cuobjdump")):
    pytest.skip("this Triton install has no NVIDIA backend tools (ptxas, cuobjdump)", allow_module_level=True)

SCRIPT = """
import json
from spikingrnn.ops.triton import compile_check
rows = []
for arch, launch, used, problem in compile_check.check([90]):
    rows.append(dict(kernel=launch.name, signature=dict(launch.signature), constexprs=dict(launch.constexprs),
                     resources=None if used is None else used._asdict(), problem=problem))
print(json.dumps(dict(rows=rows, launched=sorted(compile_check.launched_kernels()))))
"""


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_launched_kernel_is_compiled(compiled):
    launched = set(compiled["launched"])
    for cell in ("lstm", "gru", "rnn"):
        assert {f"_{cell}_persistent_forward", f"_{cell}_persistent_backward", f"_{cell}_forward_step",
                f"_{cell}_backward_step"} <= launched
    assert {row["kernel"] for row in compiled["rows"]} == launched
    assert "_matmul" in launched  # the TF32 GEMM


def test_every_dtype_and_variant_is_compiled(compiled):
    rows = compiled["rows"]
    for kernel in compiled["launched"]:
        mine = [row for row in rows if row["kernel"] == kernel]
        pointers = {t for row in mine for t in row["signature"].values() if t.startswith("*")}
        if kernel == "_matmul":  # the GEMM for float32 in TF32; half types take torch's
            assert pointers == {"*fp32"}
            assert {row["constexprs"]["TF32"] for row in mine} == {True}
            continue
        assert {"*fp32", "*bf16", "*fp16"} <= pointers, kernel
        for name in mine[0]["constexprs"]:
            if name.startswith("KIND"):  # every built-in surrogate's derivative
                assert {row["constexprs"][name] for row in mine} == set(range(8)), (kernel, name)
            if name == "CELL":  # clamp, accumulate, spike
                assert {row["constexprs"][name] for row in mine} == {0, 1, 2}, kernel
            if name == "IEEE":  # float32 in full precision, or TF32 / half types
                assert {row["constexprs"][name] for row in mine} == {False, True}, kernel
    for kernel, flags in (("_lstm_persistent_forward", ("SAVE_PRE", "PACKED")),
                          ("_gru_persistent_forward", ("SAVE_HP", "PACKED", "HAS_BIAS")),
                          ("_rnn_persistent_forward", ("SAVE_PRE", "PACKED"))):
        persistent = [row for row in rows if row["kernel"] == kernel]
        for name in flags:  # low memory (and its replay), packed sequences, bias or not
            assert {row["constexprs"][name] for row in persistent} == {False, True}, (kernel, name)
    # the low-memory LSTM keeps a 0/1 cell as uint8
    lstm = [row for row in rows if row["kernel"] == "_lstm_persistent_forward"]
    assert any(row["signature"]["c_all_ptr"] == "*u8" for row in lstm)


def test_every_specialization_compiles_within_the_gpu(compiled):
    """Also: every offset into a whole-sequence tensor is 64-bit (compile_check.narrow_offsets)."""
    problems = [f"{row['kernel']} {row['constexprs']}: {row['problem']}" for row in compiled["rows"] if row["problem"]]
    assert not problems, "\n".join(problems)
    for row in compiled["rows"]:
        used = row["resources"]
        assert 0 < used["registers"] <= 255, row
        assert used["shared_bytes"] <= 227 * 1024, row


BAD_KERNELS = """
import torch, triton, triton.language as tl
from spikingrnn.ops.triton import compile_check


@triton.jit
def square(a_ptr, b_ptr, out_ptr, N: tl.constexpr):
    i = tl.arange(0, N)
    a = tl.load(a_ptr + i[:, None] * N + i[None, :])
    b = tl.load(b_ptr + i[:, None] * N + i[None, :])
    tl.store(out_ptr + i[:, None] * N + i[None, :], tl.dot(a, b))


a = torch.zeros(8, 8)
with compile_check.record_launches() as launches:  # recorded, not run
    square[(1,)](a, a, a, N=256)  # 256 KiB operands
    square[(1,)](a, a.bfloat16(), a, N=32)  # float32 times bfloat16
big, mixed = launches
assert dict(mixed.signature) == {"a_ptr": "*fp32", "b_ptr": "*bf16", "out_ptr": "*fp32", "N": "constexpr"}
used = compile_check.compile_launch(big, 90)
print("big", used.shared_bytes > compile_check.SHARED_LIMIT[90], used.spill_bytes > 0)
try:
    compile_check.compile_launch(mixed, 90)
except Exception as error:
    print("mixed rejected", type(error).__name__)


@triton.jit
def step_rows(xp_ptr, y_ptr, t, batch, H, WIDE: tl.constexpr):
    rows = tl.arange(0, 16)
    if WIDE:
        rows = rows.to(tl.int64)
        offsets = (t * batch + rows)[:, None] * H + tl.arange(0, 16)[None, :]
    else:  # t * batch * H in 32 bits
        offsets = t * batch * H + rows[:, None] * H + tl.arange(0, 16)[None, :]
    tl.store(y_ptr + offsets, tl.load(xp_ptr + offsets))


from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
for wide in (False, True):
    signature = {"xp_ptr": "*fp32", "y_ptr": "*fp32", "t": "i32", "batch": "i32", "H": "i32", "WIDE": "constexpr"}
    ttir = triton.compile(ASTSource(step_rows, signature, {"WIDE": wide}), target=GPUTarget("cuda", 90, 32)).asm["ttir"]
    print("wide" if wide else "narrow", len(compile_check.narrow_offsets(ttir, compile_check.SEQUENCE_POINTERS)))
"""


def test_what_only_the_gpu_compiler_sees_is_caught(tmp_path):
    """A block too big for shared memory (and registers), a dot of mixed dtypes, and offsets into a
    [T, B, H] tensor computed in 32 bits (they wrap past 2^31 elements): the checks see all three (the
    interpreter would run them)."""
    script = tmp_path / "bad_kernels.py"  # @triton.jit needs its source in a file
    script.write_text(BAD_KERNELS)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-4:-2] == ["big True True", "mixed rejected CompilationError"], done.stdout
    narrow, wide = lines[-2:]
    assert narrow.startswith("narrow ") and int(narrow.split()[1]) >= 2, done.stdout  # xp and y, 32-bit
    assert wide == "wide 0", done.stdout
