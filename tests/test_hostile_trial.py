"""Issue 8's hostile trial: bad input of our own design, fed to the harness as a hostile but ordinary user would.

Every kind must end in an honest outcome: exit 2 with exactly one 'harness: error: ...' line on stderr (bad input),
or exit 1 with the matrix (a cell that did not pass), or exit 0 only where the input is valid and the matrix is
honestly green. Never a traceback, never a hang, never a raw control character on the terminal, never a silent
exit 0, and no result written earlier is lost.

205 kinds (KINDS_TOTAL below counts them; test_the_trial_counts_its_kinds keeps the number honest): 48 models,
50 goldens and data sets, 35 profiles, 41 command lines, 5 blesses, 16 library calls, 10
stateful scenarios and messages.
- models (MODEL_KINDS): broken files, odd file types, malformed graphs, hostile names, external data that points
  outside or is short, exotic and absent inputs, recursion;
- goldens and data sets (DATA_KINDS): wrong dtype/shape/proto, NaN/Inf, missing/extra outputs, odd set folders,
  0-byte files, case.json and data.json of the wrong shape;
- profiles (PROFILE_KINDS): TOML that is not TOML, impossible settings, extends cycles, names with separators,
  workers that are not workers;
- the command line (CLI_KINDS), blesses that cannot finish (BLESS_KINDS), and stateful scenarios (signals,
  resume, baselines, absurd --jobs/--repeat);
- the library entry point (LIBRARY_KINDS): options a library user can set that the parser would refuse.

Model, golden and profile kinds go through ``harness.cli.main`` in this process (the code ``python -m harness``
runs, minus interpreter start-up; cells still run in isolated workers); the command line and signals go through
real ``python -m harness`` subprocesses in scratch folders, with PYTHONPATH unset.
Escapes still open are strict xfails naming the file at fault: once fixed they flip and must be unmarked.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness import api
from harness.cli import main
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
CPU_TOML = (REPO / "device_profiles" / "cpu.toml").read_text()
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # on the terminal: anything but \t and \n is an escape
HANG_S = 60  # one kind that takes longer than this hangs


# ---- outcomes -------------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout:\n{self.out}\n--- stderr:\n{self.err}"


def honest(o: Outcome, *, green_ok: bool = False, codes: tuple[int, ...] = (1, 2)) -> Outcome:
    """The trial's rule: no traceback, no raw control character, exit 2 with one 'harness: error:' line, exit 1
    with the matrix, or exit 0 only when ``green_ok`` (the input was valid) and the matrix shows no failure."""
    __tracebackhide__ = True
    text = o.out + o.err
    assert "Traceback" not in text, str(o)
    assert not CONTROL.search(o.err) and not CONTROL.search(o.out.replace("\r", "")), f"raw control char\n{o}"
    if o.rc == 0:
        assert green_ok, f"silent exit 0 on bad input\n{o}"
        return o
    assert o.rc in codes, str(o)
    lines = o.err.splitlines()
    if o.rc == 2:
        assert len(lines) == 1 and lines[0].startswith("harness: error:"), f"not one line\n{o}"
    elif o.rc == 1:
        assert "Conformance matrix" in o.out, f"exit 1 without the matrix\n{o}"
        assert len(lines) <= 1, f"more than one stderr line\n{o}"
    return o


class _Hang(Exception):
    pass


def _in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, cache_dir: Path, cwd: Path,
                hang_s: int = HANG_S) -> Callable[..., Outcome]:
    """``harness ARGS`` through cli.main in ``cwd``; a hang past HANG_S fails the test instead of the suite."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("HARNESS_PROFILES", raising=False)

    def on_alarm(signum, frame):
        raise _Hang(f"no answer within {hang_s} s")

    def run(*args: str | Path) -> Outcome:
        capsys.readouterr()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(hang_s)
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        out, err = capsys.readouterr()
        return Outcome(rc, out, err)
    return run


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, cache_dir: Path
            ) -> Callable[..., Outcome]:
    return _in_process(monkeypatch, capsys, cache_dir, tmp_path)


def _env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("HARNESS_")}
    return {**env, "HARNESS_CACHE_DIR": str(cache_dir), "COLUMNS": "200", "NO_COLOR": "1", **extra}


@pytest.fixture(scope="session")
def cli_run(cache_dir: Path) -> Callable[..., Outcome]:
    """A real ``python -m harness ARGS`` subprocess in ``cwd``."""
    def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = HANG_S) -> Outcome:
        proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], check=False, cwd=cwd,
                              env=_env(cache_dir, **(env or {})), capture_output=True, text=True,
                              errors="replace", timeout=timeout)
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    return run


# ---- a tiny model and its case ------------------------------------------------------------------------------------

def _tiny(batch: int | str = 2, x: str = "x", y: str = "y") -> onnx.ModelProto:
    rng = np.random.default_rng(1234)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [x, "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["pre"]),
         helper.make_node("Relu", ["pre"], [y])], "tiny",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, 3])],
        initializer=[numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W"),
                     numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")])
    return _model(graph)


def _model(graph: onnx.GraphProto, opset: int = 17, ir: int = 9, **kw) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=kw.pop("opsets", [helper.make_opsetid("", opset)]),
                              producer_name="hostile", **kw)
    model.ir_version = ir
    return model


def _tensor(array: np.ndarray, name: str) -> bytes:
    return numpy_helper.from_array(np.asarray(array), name=name).SerializeToString()


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    weight, bias = (numpy_helper.to_array(t) for t in model.graph.initializer)
    return np.maximum(x @ weight + bias, 0).astype(np.float32)


X = np.random.default_rng(7).uniform(-1, 1, (2, 4)).astype(np.float32)


def _case(folder: Path, model: onnx.ModelProto | bytes | None = None, *, goldens: bool = True) -> Path:
    """A case folder: model.onnx and test_data_set_0 with x and (unless ``goldens`` is False) y."""
    tiny = _tiny()
    folder.mkdir(parents=True, exist_ok=True)
    body = model if isinstance(model, bytes) else (model or tiny).SerializeToString()
    (folder / "model.onnx").write_bytes(body)
    ds = folder / "test_data_set_0"
    ds.mkdir()
    (ds / "input_0.pb").write_bytes(_tensor(X, "x"))
    if goldens:
        (ds / "output_0.pb").write_bytes(_tensor(_reference(tiny, X), "y"))
    return folder


def _bare(folder: Path, model: onnx.ModelProto | bytes) -> Path:
    """A case folder with only model.onnx: inputs are generated and the reference profile makes the goldens."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    return folder


# ---- models ---------------------------------------------------------------------------------------------------------

def _vi(name: str, elem: int = TensorProto.FLOAT, shape: list | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [2, 4] if shape is None else shape)


def _relu_model(x: str = "x", y: str = "y", shape: list | None = None, **kw) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", [x], [y])], "g", [_vi(x, shape=shape)], [_vi(y, shape=shape)])
    return _model(graph, **kw)


def _renamed(name: str) -> Callable[[Path], Path]:
    """The output carries the hostile name and its golden is wrong, so the FAIL detail has to print the name."""
    def build(t: Path) -> Path:
        case = _bare(t / "case", _relu_model("x", name))
        ds = case / "test_data_set_0"
        ds.mkdir()
        (ds / "input_0.pb").write_bytes(_tensor(X, "x"))
        (ds / "output_0.pb").write_bytes(_tensor(np.maximum(X, 0) + 1, name))
        return case
    return build


def _cycle(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                               helper.make_node("Identity", ["a"], ["y"])], "g", [_vi("x")], [_vi("y")])
    return _bare(t / "case", _model(graph))


def _dup_outputs(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [_vi("x")], [_vi("y"), _vi("y")])
    return _bare(t / "case", _model(graph))


def _output_is_input(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [_vi("x")], [_vi("y"), _vi("x")])
    return _bare(t / "case", _model(graph))


def _custom_op(op: str, domain: str = "", opsets: list | None = None) -> Callable[[Path], Path]:
    def build(t: Path) -> Path:
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g", [_vi("x")], [_vi("y")])
        return _bare(t / "case", _model(graph, opsets=opsets or [helper.make_opsetid("", 17)]))
    return build


def _no_outputs(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [_vi("x")], [])
    return _bare(t / "case", _model(graph))


def _empty_graph(t: Path) -> Path:
    return _bare(t / "case", _model(helper.make_graph([], "g", [], [])))


def _no_opset_import(t: Path) -> Path:
    model = _relu_model()
    del model.opset_import[:]
    return _bare(t / "case", model)


def _dup_inputs(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "g", [_vi("x"), _vi("x")], [_vi("y")])
    return _bare(t / "case", _model(graph))


def _untyped_input(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [onnx.ValueInfoProto(name="x")], [_vi("y")])
    return _bare(t / "case", _model(graph))


def _typed_io(elem: int, op: str = "Identity", out_elem: int | None = None, shape: list | None = None
              ) -> Callable[[Path], Path]:
    def build(t: Path) -> Path:
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [_vi("x", elem, shape)],
                                  [_vi("y", out_elem or elem, shape)])
        return _bare(t / "case", _model(graph, opset=21, ir=10))
    return build


def _sequence_input(t: Path) -> Path:
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("SequenceLength", ["s"], ["n"])], "g", [seq],
                              [_vi("n", TensorProto.INT64, [])])
    return _bare(t / "case", _model(graph))


def _subgraph_if(t: Path) -> Path:
    then = helper.make_graph([helper.make_node("Identity", ["ghost"], ["r"])], "then", [], [_vi("r")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["r2"])], "else", [], [_vi("r2")])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], "g", [_vi("x")], [_vi("y")],
        initializer=[numpy_helper.from_array(np.float32(0), "zero")])
    return _bare(t / "case", _model(graph))


def _subgraph_loop(t: Path) -> Path:
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Add", ["v_in", "phantom"], ["v_out"])], "body",
                             [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("v_in")],
                             [_vi("cond_out", TensorProto.BOOL, []), _vi("v_out")])
    graph = helper.make_graph([helper.make_node("Loop", ["n", "t", "x"], ["y"], body=body)], "g", [_vi("x")],
                              [_vi("y")], initializer=[numpy_helper.from_array(np.int64(3), "n"),
                                                       numpy_helper.from_array(np.bool_(True), "t")])
    return _bare(t / "case", _model(graph))


def _shadowed(t: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [_vi("x")], [_vi("y")],
                              initializer=[numpy_helper.from_array(np.ones((2, 4), np.float32), "x")])
    return _bare(t / "case", _model(graph))


def _non_utf8_name(t: Path) -> Path:
    body = _relu_model("QQQQ", "y").SerializeToString().replace(b"QQQQ", b"\xff\xfeQQ")
    return _bare(t / "case", body)


def _recursive_function(t: Path) -> Path:
    fn = helper.make_function("hostile", "F", ["a"], ["b"], [helper.make_node("F", ["a"], ["b"], domain="hostile")],
                              [helper.make_opsetid("", 17), helper.make_opsetid("hostile", 1)])
    graph = helper.make_graph([helper.make_node("F", ["x"], ["y"], domain="hostile")], "g", [_vi("x")], [_vi("y")])
    model = _model(graph, opsets=[helper.make_opsetid("", 17), helper.make_opsetid("hostile", 1)], functions=[fn])
    return _bare(t / "case", model)


def _bad_raw_initializer(t: Path) -> Path:
    model = _tiny()
    model.graph.initializer[0].raw_data = b"\x00" * 5  # declares 4x3 floats, holds 5 bytes
    return _case(t / "case", model)


def _external(location: Callable[[Path], str], *, write: bytes | None = b"\x00" * 48, length: int | None = None
              ) -> Callable[[Path], Path]:
    """The tiny model with W stored as external data at ``location`` (relative to the case folder)."""
    def build(t: Path) -> Path:
        case = t / "case"
        case.mkdir(parents=True)
        model = _tiny()
        weight = model.graph.initializer[0]
        weight.ClearField("raw_data")
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entries = {"location": location(t), "offset": "0", "length": str(length if length is not None else 48)}
        for key, value in entries.items():
            weight.external_data.add(key=key, value=value)
        if write is not None:
            (t / "outside.bin").write_bytes(write)
            (case / "weights.bin").write_bytes(write)
        return _write_over(case, model)
    return build


def _write_over(case: Path, model: onnx.ModelProto) -> Path:
    """_case into a folder that may already hold external data files."""
    (case / "model.onnx").write_bytes(model.SerializeToString())
    ds = case / "test_data_set_0"
    ds.mkdir()
    (ds / "input_0.pb").write_bytes(_tensor(X, "x"))
    (ds / "output_0.pb").write_bytes(_tensor(_reference(_tiny(), X), "y"))
    return case


def _ext_symlink(t: Path) -> Path:
    case = _external(lambda _: "link.bin")(t)
    (case / "link.bin").symlink_to(t / "outside.bin")
    return case


def _model_file(kind: str) -> Callable[[Path], Path]:
    def build(t: Path) -> Path:
        case = t / "case"
        case.mkdir()
        target = case / "model.onnx"
        if kind == "dir":
            target.mkdir()
        elif kind == "loop":
            target.symlink_to(target)
        elif kind == "dangling":
            target.symlink_to(case / "nowhere.onnx")
        elif kind == "fifo":
            os.mkfifo(target)
        return case
    return build


MODEL_KINDS: dict[str, Callable[[Path], Path]] = {
    "empty-file": lambda t: _bare(t / "case", b""),
    "truncated-protobuf": lambda t: _case(t / "case", _tiny().SerializeToString()[:97]),
    "text-named-onnx": lambda t: _case(t / "case", b"this is a README, not a model\n"),
    "random-bytes": lambda t: _case(t / "case", np.random.default_rng(3).bytes(4096)),
    "gzipped-model": lambda t: _case(t / "case", gzip.compress(_tiny().SerializeToString())),
    "tensorproto-as-model": lambda t: _case(t / "case", _tensor(X, "x")),
    "directory-named-model-onnx": _model_file("dir"),
    "symlink-loop": _model_file("loop"),
    "dangling-symlink": _model_file("dangling"),
    "fifo-named-model-onnx": _model_file("fifo"),
    "graph-cycle": _cycle,
    "duplicate-output-names": _dup_outputs,
    "output-is-also-input": _output_is_input,
    "duplicate-input-names": _dup_inputs,
    "huge-declared-dims": lambda t: _bare(t / "case", _relu_model(shape=[1 << 40, 1 << 20])),
    "negative-dims": lambda t: _bare(t / "case", _relu_model(shape=[-3, 4])),
    "unknown-opset-domain": _custom_op("Frobnicate", "com.hostile",
                                       [helper.make_opsetid("", 17), helper.make_opsetid("com.hostile", 1)]),
    "domain-not-imported": _custom_op("Frobnicate", "com.undeclared"),
    "opset-99": lambda t: _bare(t / "case", _relu_model(opset=99)),
    "opset-negative": lambda t: _bare(t / "case", _relu_model(opset=-1)),
    "ir-version-99": lambda t: _bare(t / "case", _relu_model(ir=99)),
    "no-opset-import": _no_opset_import,
    "op-with-no-schema": _custom_op("NoSuchOperator"),
    "empty-op-type": _custom_op(""),
    "graph-with-no-outputs": _no_outputs,
    "empty-graph": _empty_graph,
    "untyped-input": _untyped_input,
    "name-with-nul": _renamed("x\x00evil"),
    "name-with-newline": _renamed("x\nharness: error: forged"),
    "name-with-ansi": _renamed("\x1b[2J\x1b[31mred"),
    "name-300-chars": _renamed("n" * 300),
    "name-non-utf8": _non_utf8_name,
    "initializer-shadows-input": _shadowed,
    "if-branch-missing-name": _subgraph_if,
    "loop-body-missing-name": _subgraph_loop,
    "recursive-local-function": _recursive_function,
    "initializer-short-raw-data": _bad_raw_initializer,
    "zero-size-input": lambda t: _bare(t / "case", _relu_model(shape=[0, 4])),
    "string-input-no-data": _typed_io(TensorProto.STRING),
    "sequence-input-no-data": _sequence_input,
    "bfloat16-input-generated": _typed_io(TensorProto.BFLOAT16),
    "float8-input-generated": _typed_io(TensorProto.FLOAT8E4M3FN),
    "external-data-dotdot": _external(lambda t: "../outside.bin"),
    "external-data-absolute": _external(lambda t: str(t / "outside.bin")),
    "external-data-symlink-out": _ext_symlink,
    "external-data-missing": _external(lambda t: "absent.bin", write=None),
    "external-data-short": _external(lambda t: "weights.bin", write=b"\x00" * 7),
    "external-data-over-2gb": _external(lambda t: "weights.bin", length=3 << 30),
}

# Valid models, however odd: exit 0 is honest when the matrix is green.
MODEL_GREEN_OK = {"initializer-shadows-input", "zero-size-input", "empty-graph", "duplicate-output-names",
                  "output-is-also-input", "bfloat16-input-generated", "float8-input-generated"}
# Escapes still open: kind -> '<file>: <what escapes>'.
MODEL_XFAIL: dict[str, str] = {}


def _model_params() -> list:
    return [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=MODEL_XFAIL[k])) if k in MODEL_XFAIL else k
            for k in MODEL_KINDS]


@pytest.mark.parametrize("kind", _model_params())
def test_a_hostile_model(kind: str, tmp_path: Path, harness) -> None:
    case = MODEL_KINDS[kind](tmp_path)
    o = harness("run", case, "--profile", "cpu", "--profile", "cpu-noopt", "--numerics-only",
                "--out", tmp_path / "out", "--root", tmp_path / "no-root")
    honest(o, green_ok=kind in MODEL_GREEN_OK)


def test_a_negative_dim_is_named_as_such(tmp_path: Path, harness) -> None:
    o = honest(harness("run", MODEL_KINDS["negative-dims"](tmp_path), "--profile", "cpu", "--profile", "cpu-noopt",
                       "--numerics-only", "--out", tmp_path / "out"))
    assert "negative" in o.err and "--dim -3" not in o.err, o.err


# ---- goldens and data sets ------------------------------------------------------------------------------------------

def _mutated(change: Callable[[Path], None]) -> Callable[[Path], Path]:
    """The tiny case (which passes), then ``change`` applied to its folder."""
    def build(t: Path) -> Path:
        case = _case(t / "case")
        change(case)
        return case
    return build


def _put(rel: str, body: bytes) -> Callable[[Path], Path]:
    def change(case: Path) -> None:
        (case / rel).parent.mkdir(parents=True, exist_ok=True)
        (case / rel).write_bytes(body)
    return _mutated(change)


def _golden(array: np.ndarray, name: str = "y") -> Callable[[Path], Path]:
    return _put("test_data_set_0/output_0.pb", _tensor(array, name))


def _input(array: np.ndarray, name: str = "x") -> Callable[[Path], Path]:
    return _put("test_data_set_0/input_0.pb", _tensor(array, name))


def _moved(src: str, dst: str) -> Callable[[Path], Path]:
    return _mutated(lambda case: (case / src).rename(case / dst))


def _removed(rel: str) -> Callable[[Path], Path]:
    return _mutated(lambda case: (case / rel).unlink())


def _json(name: str, text: str) -> Callable[[Path], Path]:
    return _mutated(lambda case: (case / name).write_text(text))


def _sequence(name: str) -> bytes:
    seq = onnx.SequenceProto(name=name, elem_type=onnx.SequenceProto.TENSOR)
    seq.tensor_values.add().CopyFrom(numpy_helper.from_array(X))
    return seq.SerializeToString()


def _raw_tensor(name: str, dims: list[int], nbytes: int) -> bytes:
    """A float tensor whose raw_data does not hold what its dims declare."""
    return TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, raw_data=b"\x00" * nbytes).SerializeToString()


GOOD_Y = _reference(_tiny(), X)
DATA_KINDS: dict[str, Callable[[Path], Path]] = {
    "golden-int32-dtype": _golden(GOOD_Y.astype(np.int32)),
    "golden-float16-dtype": _golden(GOOD_Y.astype(np.float16)),
    "golden-float64-dtype-off-by-1e-3": _golden(GOOD_Y.astype(np.float64) + 1e-3),
    "golden-wrong-shape": _golden(GOOD_Y.reshape(3, 2)),
    "golden-wrong-rank": _golden(GOOD_Y.reshape(1, 2, 3)),
    "golden-scalar": _golden(np.float32(1.0)),
    "golden-nan": _golden(np.full_like(GOOD_Y, np.nan)),
    "golden-inf": _golden(np.full_like(GOOD_Y, np.inf)),
    "golden-wrong-name": _golden(GOOD_Y, "not_y"),
    "input-nan": _input(np.full_like(X, np.nan)),
    "input-inf": _input(np.full_like(X, -np.inf)),
    "input-int64-dtype": _input(X.astype(np.int64)),
    "input-wrong-shape": _input(X.reshape(4, 2)),
    "input-wrong-name": _input(X, "z"),
    "input-huge-declared-dims": _put("test_data_set_0/input_0.pb", _raw_tensor("x", [1 << 40, 4], 16)),
    "golden-missing-one-set": _mutated(lambda c: (c / "test_data_set_1").mkdir() or (
        c / "test_data_set_1" / "input_0.pb").write_bytes(_tensor(X, "x"))),
    "golden-extra-output": _put("test_data_set_0/output_1.pb", _tensor(GOOD_Y, "extra")),
    "input-extra": _put("test_data_set_0/input_1.pb", _tensor(X, "x2")),
    "golden-is-a-model": _put("test_data_set_0/output_0.pb", _tiny().SerializeToString()),
    "golden-is-a-sequence": _put("test_data_set_0/output_0.pb", _sequence("y")),
    "input-is-a-sequence": _put("test_data_set_0/input_0.pb", _sequence("x")),
    "golden-random-bytes": _put("test_data_set_0/output_0.pb", np.random.default_rng(5).bytes(333)),
    "golden-short-raw-data": _put("test_data_set_0/output_0.pb", _raw_tensor("y", [2, 3], 5)),
    "golden-0-byte": _put("test_data_set_0/output_0.pb", b""),
    "input-0-byte": _put("test_data_set_0/input_0.pb", b""),
    "golden-is-a-directory": _mutated(lambda c: (c / "test_data_set_0/output_0.pb").unlink() or (
        c / "test_data_set_0/output_0.pb").mkdir()),
    "golden-symlink-loop": _mutated(lambda c: (c / "test_data_set_0/output_0.pb").unlink() or (
        c / "test_data_set_0/output_0.pb").symlink_to(c / "test_data_set_0/output_0.pb")),
    "golden-permissions-000": _mutated(lambda c: (c / "test_data_set_0/output_0.pb").chmod(0)),
    "data-set-minus-1": _moved("test_data_set_0", "test_data_set_-1"),
    "data-set-99999999999": _moved("test_data_set_0", "test_data_set_99999999999"),
    "data-set-is-a-file": _mutated(lambda c: (c / "test_data_set_1").write_text("not a folder")),
    "data-set-no-inputs": _removed("test_data_set_0/input_0.pb"),
    "data-set-output-index-gap": _moved("test_data_set_0/output_0.pb", "test_data_set_0/output_7.pb"),
    "case-json-not-json": _json("case.json", "{case: tiny,"),
    "case-json-array": _json("case.json", "[]"),
    "case-json-wrong-types": _json("case.json", '{"dims": "batch", "tolerance": 3}'),
    "case-json-unknown-key": _json("case.json", '{"tolerence": {"rtol": 1}}'),
    "case-json-huge-number": _json("case.json", '{"tolerance": {"rtol": 1e400}}'),
    "case-json-negative-tolerance": _json("case.json", '{"tolerance": {"atol": -1}}'),
    "case-json-nan-tolerance": _json("case.json", '{"tolerance": {"rtol": NaN}}'),
    "case-json-schema-version-99": _json("case.json", '{"schema_version": 99}'),
    "case-json-huge-dim": lambda t: _bare(t / "case", _tiny(batch="N")) and (t / "case" / "case.json").write_text(
        '{"dims": {"N": 100000000000000000000}}') and t / "case",
    "case-json-not-utf8": _mutated(lambda c: (c / "case.json").write_bytes(b'{"description": "\xff\xfe"}')),
    "data-json-not-an-object": _json("data.json", '[1e-3, 1e-7]'),
    "data-json-string-tolerance": _json("data.json", '{"rtol": "loose", "atol": 0}'),
    "data-json-infinite-atol": _json("data.json", '{"rtol": 0, "atol": 1e999}'),
}
# A 0-mode file that root reads is an ordinary golden; a set index past 2**32 is still just an index.
DATA_GREEN_OK = {"golden-permissions-000", "data-set-99999999999"}
DATA_KINDS.update({
    "case-json-range-for-no-such-input": lambda t: _generated(t, '{"dims": {"N": 2}, "input_ranges": '
                                                                 '{"nosuch": {"low": 0, "high": 1}}}'),
    "case-json-dim-no-input-has": lambda t: _generated(t, '{"dims": {"N": 2, "Q": 3}}'),
    "case-json-range-low-above-high": lambda t: _generated(t, '{"dims": {"N": 2}, "input_ranges": '
                                                              '{"x": {"low": 5, "high": -5}}}'),
    "case-json-dim-zero": lambda t: _generated(t, '{"dims": {"N": 0}}'),
})
DATA_XFAIL: dict[str, str] = {}


def _params(kinds: dict, xfails: dict[str, str]) -> list:
    return [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=xfails[k])) if k in xfails else k
            for k in kinds]


def _generated(t: Path, case_json: str) -> Path:
    """A case with no stored inputs (batch N): its case.json decides how inputs are generated; two profiles run it
    (the reference makes the goldens), so a case.json the harness ignores ends green."""
    case = _bare(t / "case", _tiny(batch="N"))
    (case / "case.json").write_text(case_json)
    return case


@pytest.mark.parametrize("kind", _params(DATA_KINDS, DATA_XFAIL))
def test_hostile_goldens_and_data_sets(kind: str, tmp_path: Path, harness) -> None:
    case = DATA_KINDS[kind](tmp_path)
    generated = kind.startswith("case-json-") and not (case / "test_data_set_0").exists()
    second = ["--profile", "cpu-noopt"] if generated else []
    o = harness("run", case, "--profile", "cpu", *second, "--numerics-only", "--out", tmp_path / "out",
                "--root", tmp_path / "no-root")
    honest(o, green_ok=kind in DATA_GREEN_OK and os.geteuid() == 0)


# ---- profiles -------------------------------------------------------------------------------------------------------

def _cpu(name: str, extra: str = "", *, head: str = "") -> str:
    return f'{head}name = "{name}"\n[ep]\nname = "CPUExecutionProvider"\n{extra}\n'


PROFILE_KINDS: dict[str, dict[str, str | bytes]] = {
    "not-toml": {"p.toml": "name = [unclosed\n"},
    "binary": {"p.toml": np.random.default_rng(9).bytes(256)},
    "empty-file": {"p.toml": ""},
    "not-utf8": {"p.toml": b'name = "p\xff"\n[ep]\nname = "CPUExecutionProvider"\n'},
    "name-missing": {"p.toml": '[ep]\nname = "CPUExecutionProvider"\n'},
    "name-not-a-string": {"p.toml": 'name = 7\n[ep]\nname = "CPUExecutionProvider"\n'},
    "duplicate-names-one-dir": {"a.toml": _cpu("p"), "b.toml": _cpu("p")},
    "extends-cycle": {"a.toml": 'name = "p"\nextends = "q"\n', "b.toml": 'name = "q"\nextends = "p"\n'},
    "extends-itself": {"p.toml": 'name = "p"\nextends = "p"\n'},
    "extends-missing": {"p.toml": 'name = "p"\nextends = "no-such-profile"\n'},
    "unknown-ep": {"p.toml": 'name = "p"\n[ep]\nname = "QuantumExecutionProvider"\n'},
    "plugin-not-allowed": {"p.toml": 'name = "p"\n[ep]\nname = "CPUExecutionProvider"\nplugin = "os"\n'},
    "env-harness-variable": {"p.toml": _cpu("p", 'env = { HARNESS_TEST_FAULT = "segfault:*" }')},
    "worker-env-harness-variable": {"p.toml": _cpu("p", '[worker]\nenv = { HARNESS_CACHE_DIR = "/" }')},
    "negative-timeout": {"p.toml": _cpu("p", head="timeout_s = -5\n")},
    "nan-timeout": {"p.toml": _cpu("p", head="timeout_s = nan\n")},
    "inf-timeout": {"p.toml": _cpu("p", head="timeout_s = inf\n")},
    "threads-0-means-default": {"p.toml": _cpu("p", "[session]\nintra_op_threads = 0")},
    "threads-minus-1": {"p.toml": _cpu("p", "[session]\nintra_op_threads = -1")},
    "threads-10-to-the-9": {"p.toml": _cpu("p", "[session]\nintra_op_threads = 1000000000")},
    "threads-a-string": {"p.toml": _cpu("p", '[session]\ninter_op_threads = "many"')},
    "tolerance-nan": {"p.toml": _cpu("p", "[tolerance]\nrtol = nan")},
    "tolerance-negative": {"p.toml": _cpu("p", "[tolerance]\natol = -1.0")},
    "known-failure-no-reason": {"p.toml": _cpu("p", '[[known_failures]]\ncase = "*"')},
    "name-with-slash": {"p.toml": _cpu("../../etc/p")},
    "name-with-newline": {"p.toml": _cpu("p\\nharness: error: forged")},
    "unknown-top-level-key": {"p.toml": _cpu("p", head="colour = \"blue\"\n")},
    "unknown-session-key": {"p.toml": _cpu("p", "[session]\nturbo = true")},
    "bad-graph-optimization": {"p.toml": _cpu("p", '[session]\ngraph_optimization = "ludicrous"')},
    "memory-limit-0": {"p.toml": _cpu("p", "[constraints]\nmemory_limit_mb = 0")},
    "cpu-cores-absent": {"p.toml": _cpu("p", "[constraints]\ncpu_cores = [4096]")},
    "worker-command-false": {"p.toml": _cpu("p", '[worker]\ncommand = ["false"]')},
    "worker-command-missing-binary": {"p.toml": _cpu("p", '[worker]\ncommand = ["/no/such/python"]')},
    "worker-command-empty": {"p.toml": _cpu("p", "[worker]\ncommand = []")},
    "toml-file-is-a-directory": {"p.toml/": ""},
}
# 0 threads is onnxruntime's default; every field has a default and the name defaults to the file's; an empty
# command is the default worker.
PROFILE_GREEN_OK = {"threads-0-means-default", "empty-file", "name-missing", "worker-command-empty"}
PROFILE_XFAIL: dict[str, str] = {}


def _write_files(folder: Path, files: dict[str, str | bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        if name.endswith("/"):
            (folder / name.rstrip("/")).mkdir()
        elif isinstance(body, bytes):
            (folder / name).write_bytes(body)
        else:
            (folder / name).write_text(body)


@pytest.mark.parametrize("kind", _params(PROFILE_KINDS, PROFILE_XFAIL))
def test_a_hostile_profile(kind: str, tmp_path: Path, harness) -> None:
    _write_files(tmp_path / "profiles", PROFILE_KINDS[kind])
    case = _case(tmp_path / "case")
    o = harness("run", case, "--profile", "p", "--numerics-only", "--profiles-dir", tmp_path / "profiles",
                "--out", tmp_path / "out", "--root", tmp_path / "no-root")
    honest(o, green_ok=kind in PROFILE_GREEN_OK)


def test_a_profile_named_like_a_built_in_says_it_overrides(tmp_path: Path, harness) -> None:
    """A user's cpu.toml layered over the built-in is allowed (later wins), but the run must say whose it ran."""
    _write_files(tmp_path / "profiles", {"cpu.toml": _cpu("cpu", "[session]\ngraph_optimization = \"disable\"")})
    o = honest(harness("profiles", "--profiles-dir", tmp_path / "profiles"), green_ok=True)
    assert o.rc == 0 and "--profiles-dir" in o.out, str(o)


def test_the_same_profile_name_in_two_folders_later_wins(tmp_path: Path, harness) -> None:
    _write_files(tmp_path / "one", {"p.toml": _cpu("p", head="timeout_s = -1\n")})
    _write_files(tmp_path / "two", {"p.toml": _cpu("p")})
    o = harness("run", _case(tmp_path / "case"), "--profile", "p", "--numerics-only", "--profiles-dir",
                tmp_path / "one", "--profiles-dir", tmp_path / "two", "--out", tmp_path / "out")
    honest(o, green_ok=True)  # the broken one is shadowed by the later folder, or refused: never a traceback


# ---- the command line, as a user types it (real subprocesses) -------------------------------------------------------

@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory, cli_run) -> Path:
    """A scratch folder with cases tiny and other under cases/, a bare model, and one finished run of tiny."""
    home = tmp_path_factory.mktemp("home")
    _case(home / "cases" / "tiny")
    other = _bare(home / "cases" / "other", _relu_model("a", "b"))
    ds = other / "test_data_set_0"
    ds.mkdir()
    (ds / "input_0.pb").write_bytes(_tensor(X, "a"))
    (ds / "output_0.pb").write_bytes(_tensor(np.maximum(X, 0), "b"))
    _bare(home / "bare", _tiny())
    (home / "garbage.toml").write_bytes(b"\x00\x01 not toml [[[")
    honest(cli_run("run", "tiny", "--root", "cases", "--profile", "cpu", "--numerics-only", "--out", "runs",
                   cwd=home), green_ok=True)
    [run] = (home / "runs").iterdir()
    (home / "run").symlink_to(run)
    return home


BASE = ["run", "tiny", "--root", "cases", "--profile", "cpu", "--numerics-only"]
CLI_KINDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "unknown-flag": ([*BASE, "--frobnicate"], {}),
    "unknown-subcommand": (["explode"], {}),
    "flag-without-value": ([*BASE, "--jobs"], {}),
    "profile-unknown": (["run", "tiny", "--root", "cases", "--profile", "no-such-profile"], {}),
    "profile-empty-name": (["run", "tiny", "--root", "cases", "--profile", ""], {}),
    "profile-5000-chars": (["run", "tiny", "--root", "cases", "--profile", "p" * 5000], {}),
    "jobs-0": ([*BASE, "--jobs", "0"], {}),
    "jobs-minus-1": ([*BASE, "--jobs", "-1"], {}),
    "jobs-not-a-number": ([*BASE, "--jobs", "lots"], {}),
    "repeat-0": ([*BASE, "--repeat", "0"], {}),
    "seed-minus-1": ([*BASE, "--seed", "-1"], {}),
    "seed-not-a-number": ([*BASE, "--seed", "0x1g"], {}),
    "timeout-0": ([*BASE, "--timeout", "0"], {}),
    "time-cap-0": (["run", "tiny", "--root", "cases", "--profile", "cpu", "--time-cap", "0"], {}),
    "dim-without-equals": ([*BASE, "--dim", "batch"], {}),
    "dim-empty-name": ([*BASE, "--dim", "=3"], {}),
    "dim-negative": ([*BASE, "--dim", "N=-1"], {}),
    "max-regression-garbage": (["run", "tiny", "--root", "cases", "--profile", "cpu", "--baseline", "run",
                                "--max-regression", "p95:lots"], {}),
    "numerics-only-with-baseline": ([*BASE, "--baseline", "run"], {}),
    "reference-unknown": (["run", "bare", "--profile", "cpu", "--profile", "cpu-noopt", "--numerics-only",
                           "--reference", "no-such-profile"], {}),
    "root-missing": (["run", "--root", "nowhere", "--profile", "cpu", "--numerics-only"], {}),
    "root-is-a-file": (["run", "--root", "garbage.toml", "--profile", "cpu", "--numerics-only"], {}),
    "case-unknown": ([*BASE[:1], "no-such-case", *BASE[2:]], {}),
    "empty-string-target": (["run", "", "--root", "cases", "--profile", "cpu", "--numerics-only"], {}),
    "non-utf8-target": (["run", os.fsdecode(b"case-\xff"), "--root", "cases", "--profile", "cpu"], {}),
    "resume-a-case-folder": (["run", "--resume", "cases/tiny"], {}),
    "resume-missing-path": (["run", "--resume", "runs/20990101-000000-000000"], {}),
    "resume-a-garbage-file": (["run", "--resume", "garbage.toml"], {}),
    "resume-with-other-cases": (["run", "other", "--root", "cases", "--resume", "run"], {}),
    "calibration-data-not-a-dir": ([*BASE, "--calibration-data", "garbage.toml"], {}),
    "calibration-data-of-another-model": (["run", "tiny", "--root", "cases", "--profile", "cpu-int8-static",
                                          "--numerics-only", "--calibration-data", "cases/other"], {}),
    "bless-without-force": (["bless", "tiny", "--root", "cases"], {}),
    "bless-unknown-case": (["bless", "no-such-case", "--root", "cases"], {}),
    "bless-unknown-profile": (["bless", "bare", "--profile", "no-such-profile"], {}),
    "ops-of-a-case-folder": (["ops", "cases/tiny"], {}),
    "ops-against-garbage": (["ops", "run", "--against", "garbage.toml"], {}),
    "list-root-is-a-file": (["list", "--root", "garbage.toml"], {}),
    "env-profiles-a-garbage-file": ([*BASE], {"HARNESS_PROFILES": "garbage.toml"}),
    "env-profiles-missing-dir": ([*BASE], {"HARNESS_PROFILES": "/no/such/profiles"}),
    "profiles-dir-a-garbage-file": (["profiles", "--profiles-dir", "garbage.toml"], {}),
    "ascii-locale-bad-case": (["run", "cases/\u00e9\u00e9", "--profile", "cpu"],
                              {"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}),
}
CLI_XFAIL: dict[str, str] = {}


# These go through a real ``python -m harness`` (the environment, the locale and argv bytes matter); the rest go
# through cli.main in-process, which is the same code without the interpreter's start-up.
SUBPROCESS_KINDS = {"env-profiles-a-garbage-file", "env-profiles-missing-dir", "ascii-locale-bad-case",
                    "non-utf8-target", "unknown-flag", "resume-a-garbage-file", "profile-unknown"}


@pytest.mark.parametrize("kind", _params(CLI_KINDS, CLI_XFAIL))
def test_a_hostile_command_line(kind: str, home: Path, cli_run, monkeypatch, capsys, cache_dir: Path) -> None:
    argv, env = CLI_KINDS[kind]
    before = sorted(p.name for p in (home / "runs").iterdir())
    if kind in SUBPROCESS_KINDS:
        honest(cli_run(*argv, cwd=home, env=env))
    else:
        honest(_in_process(monkeypatch, capsys, cache_dir, home)(*argv))
    assert sorted(p.name for p in (home / "runs").iterdir()) == before, "a bad command touched earlier results"


# ---- stateful scenarios: signals, resume, baselines, results inside the input ---------------------------------------

def _two_case_root(home: Path) -> Path:
    for name in ("a", "b"):
        _case(home / "cases" / name)
    return home / "cases"


def _journal_cells(run: Path) -> list[str]:
    """The cases of the journal's cell lines (a line still being written is not one yet)."""
    cases = []
    for line in (run / "journal.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("kind") == "cell":
            cases.append(entry["case"])
    return cases


def _processes_marked(mark: bytes) -> list[int]:
    """Processes whose environment holds ``mark`` (this test's workers inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("signum", [
    signal.SIGINT,
    signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_mid_run_keeps_finished_cells_and_resumes(signum: int, tmp_path: Path, cache_dir: Path, cli_run
                                                           ) -> None:
    """Case b's worker hangs (the test fault); the harness is signalled once case a is journalled. The cell of a
    must survive, stderr must be one line, and --resume (the fault gone) must finish b without redoing a."""
    _two_case_root(tmp_path)
    argv = [sys.executable, "-m", "harness", "run", "--root", "cases", "--profile", "cpu", "--numerics-only",
            "--out", "runs"]
    mark = f"TRIAL_MARK={tmp_path}".encode()
    env = _env(cache_dir, HARNESS_TEST_FAULT="hang:b", TRIAL_MARK=str(tmp_path))
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        journals = list((tmp_path / "runs").glob("*/journal.jsonl"))
        if journals and _journal_cells(journals[0].parent) == ["a"]:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("case a was never journalled")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=HANG_S)
    [run] = (tmp_path / "runs").iterdir()
    assert proc.returncode != 0 and "Traceback" not in out + err, f"exit {proc.returncode}\n{out}\n{err}"
    assert _journal_cells(run) == ["a"], "the finished cell was lost"
    time.sleep(0.5)
    assert not _processes_marked(mark), "a worker outlived the signalled harness"
    o = honest(cli_run("run", "--resume", run, cwd=tmp_path), green_ok=True)
    assert o.rc == 0 and sorted(_journal_cells(run)) == ["a", "b"], str(o)
    assert len(err.splitlines()) == 1, f"exit {proc.returncode}, stderr: {err!r}"


def test_a_hand_edited_record_is_refused_when_resumed(tmp_path: Path, harness) -> None:
    _two_case_root(tmp_path)
    honest(harness("run", "--root", "cases", "--profile", "cpu", "--numerics-only", "--out", "runs"), green_ok=True)
    [run] = (tmp_path / "runs").iterdir()
    record = json.loads((run / "record.json").read_text())
    record["cells"][0]["verdict"] = "TOTALLY-FINE"
    (run / "record.json").write_text(json.dumps(record))
    o = honest(harness("run", "--resume", run), green_ok=True)
    assert "TOTALLY-FINE" not in o.out + (run / "record.json").read_text(), f"a forged verdict was kept\n{o}"


def test_results_written_inside_the_case_do_not_corrupt_it(tmp_path: Path, harness) -> None:
    case = _case(tmp_path / "case")
    before = {p: p.read_bytes() for p in case.rglob("*.pb")}
    honest(harness("run", case, "--profile", "cpu", "--numerics-only", "--out", case / "runs"), green_ok=True)
    o = honest(harness("run", case, "--profile", "cpu", "--numerics-only", "--out", case / "runs"), green_ok=True)
    assert o.rc == 0 and {p: p.read_bytes() for p in before} == before
    assert len(list((case / "runs").iterdir())) == 2, "an earlier run record was lost"


def test_a_baseline_of_other_cases_says_it_compared_nothing(tmp_path: Path, harness) -> None:
    _two_case_root(tmp_path)
    honest(harness("run", "a", "--root", "cases", "--profile", "cpu", "--time-cap", "0.05", "--out", "runs"),
           green_ok=True)
    [run] = (tmp_path / "runs").iterdir()
    o = honest(harness("run", "b", "--root", "cases", "--profile", "cpu", "--time-cap", "0.05", "--out", "runs2",
                       "--baseline", run), green_ok=True)
    assert o.rc != 0 or "baseline" in o.out.lower() + o.err.lower(), f"a baseline that matched no cell, unsaid\n{o}"


def test_absurd_jobs_are_refused_or_capped(tmp_path: Path, monkeypatch, capsys, cache_dir: Path) -> None:
    """Run safely: past two real workers, starting one fails (the pool drops it), so the host is never forked
    over; the run must still answer within 8 s, refused at parse time or capped to the cells it has. (Found by
    this trial: prestart started one worker per job; fixed in 7c31264.)"""
    from harness.run.pool import WorkerPool
    real_start, starts = WorkerPool._start, []

    def at_most_two(self, profile):
        starts.append(profile.name)
        if len(starts) > 2:
            raise RuntimeError("the trial allows two real workers")
        return real_start(self, profile)
    monkeypatch.setattr(WorkerPool, "_start", at_most_two)
    case = _case(tmp_path / "case")
    run = _in_process(monkeypatch, capsys, cache_dir, tmp_path, hang_s=8)
    honest(run("run", case, "--profile", "cpu", "--numerics-only", "--jobs", "1000000000", "--out", "runs"),
           green_ok=True)


def test_absurd_repeat_is_refused(tmp_path: Path, monkeypatch, capsys, cache_dir: Path) -> None:
    case = _case(tmp_path / "case")
    run = _in_process(monkeypatch, capsys, cache_dir, tmp_path, hang_s=8)
    honest(run("run", case, "--profile", "cpu", "--numerics-only", "--repeat", "1000000000", "--out", "runs"))


def _blocked(rel: str, as_dir: bool) -> Callable[[Path], None]:
    def change(case: Path) -> None:
        target = case / rel
        if target.is_dir():
            import shutil
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.mkdir() if as_dir else target.write_text("in the way")
    return change


BLESS_KINDS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "bless-onto-a-golden-that-is-a-directory": (_blocked("test_data_set_0/output_0.pb", True), ["--force"]),
    "bless-where-case-json-is-a-directory": (_blocked("case.json", True), ["--force"]),
    "bless-where-the-data-set-is-a-file": (_blocked("test_data_set_0", False), ["--force"]),
    "bless-a-model-that-is-empty": (lambda case: (case / "model.onnx").write_bytes(b""), ["--force"]),
    "bless-with-an-unused-dim": (lambda case: None, ["--force", "--dim", "nosuch=3"]),
}
# No data set left to keep: bless may write a fresh one. --force replaces the whole case's goldens, a case.json
# folder included.
BLESS_GREEN_OK = {"bless-where-the-data-set-is-a-file", "bless-where-case-json-is-a-directory"}
BLESS_XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("kind", _params(BLESS_KINDS, BLESS_XFAIL))
def test_a_hostile_bless(kind: str, tmp_path: Path, harness) -> None:
    """A bless that cannot finish leaves every golden it found as it was."""
    case = _case(tmp_path / "case")
    change, flags = BLESS_KINDS[kind]
    change(case)
    before = {p: p.read_bytes() for p in case.rglob("*") if p.is_file()}
    o = honest(harness("bless", case, *flags), green_ok=kind in BLESS_GREEN_OK)
    if o.rc != 0:
        assert {p: p.read_bytes() for p in before} == before, "a failed bless changed the case"


# ---- the library entry point ----------------------------------------------------------------------------------------

LIBRARY_KINDS: dict[str, tuple[list, list | None, dict]] = {
    "jobs-one-and-a-half": (["case"], ["cpu"], {"jobs": 1.5}),
    "jobs-minus-3": (["case"], ["cpu"], {"jobs": -3}),
    "repeat-0": (["case"], ["cpu"], {"repeat": 0}),
    "timeout-negative": (["case"], ["cpu"], {"timeout_s": -1.0}),
    "timeout-nan": (["case"], ["cpu"], {"timeout_s": float("nan")}),
    "time-cap-inf": (["case"], ["cpu"], {"time_cap_s": float("inf"), "numerics_only": False}),
    "dims-negative": (["bare"], ["cpu", "cpu-noopt"], {"dims": {"N": -1}}),
    "dims-10-to-the-12": (["bare"], ["cpu", "cpu-noopt"], {"dims": {"N": 10 ** 12}}),
    "dims-a-string": (["bare"], ["cpu", "cpu-noopt"], {"dims": {"N": "two"}}),
    "seed-negative": (["bare"], ["cpu", "cpu-noopt"], {"seed": -1}),
    "case-an-int": ([42], ["cpu"], {}),
    "profile-unknown": (["case"], ["no-such-profile"], {}),
    "profiles-empty-list": (["case"], [], {"builtin_profiles": False}),
    "reference-unknown": (["bare"], ["cpu", "cpu-noopt"], {"reference": "no-such-profile"}),
    "out-is-a-file": (["case"], ["cpu"], {"out": Path("case/model.onnx")}),
    "max-regression-garbage": (["case"], ["cpu"], {"numerics_only": False, "max_regression": ["fast"]}),
}
LIBRARY_XFAIL: dict[str, str] = {}  # every escape found here is fixed (api.check_options)


@pytest.mark.parametrize("kind", _params(LIBRARY_KINDS, LIBRARY_XFAIL))
def test_a_hostile_library_call(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    """Options a library user can set that the parser would refuse: a typed one-line HarnessError, never another
    exception, and never a record as if nothing were wrong."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))
    _case(tmp_path / "case")
    _bare(tmp_path / "bare", _tiny(batch="N"))
    cases, profiles, extra = LIBRARY_KINDS[kind]
    options = api.MatrixOptions(**{"out": tmp_path / "out", "numerics_only": True, "root": tmp_path / "no-root",
                                   "time_cap_s": 0.05, **extra})
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Hang(f"no answer within {HANG_S} s")))
    signal.alarm(HANG_S)
    try:
        with pytest.raises(HarnessError) as caught:
            api.run_matrix(cases, profiles, options)
    finally:
        signal.alarm(0)
    assert "\n" not in caught.value.one_line() and not CONTROL.search(caught.value.one_line())


# ---- the count ------------------------------------------------------------------------------------------------------

SCENARIO_KINDS = ("negative-dim-message", "jobs-10-to-the-9", "repeat-10-to-the-9", "sigint", "sigterm",
                  "hand-edited-record", "results-inside-the-case", "baseline-of-other-cases",
                  "profile-named-like-a-built-in", "same-profile-name-in-two-folders")
KINDS_TOTAL = (len(MODEL_KINDS) + len(DATA_KINDS) + len(PROFILE_KINDS) + len(CLI_KINDS) + len(BLESS_KINDS)
               + len(LIBRARY_KINDS)
               + len(SCENARIO_KINDS))


def test_the_trial_counts_its_kinds() -> None:
    names = [*MODEL_KINDS, *DATA_KINDS, *PROFILE_KINDS, *CLI_KINDS, *BLESS_KINDS, *LIBRARY_KINDS, *SCENARIO_KINDS]
    assert KINDS_TOTAL == len(names) >= 100
