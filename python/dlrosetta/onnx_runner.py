"""Check and run the stacks' exported ONNX models in an ONNX runtime (ONNX Runtime or
OpenVINO's CPU plugin): `python -m dlrosetta.onnx_runner SPEC.json`, inside .venvs/onnx.

For each export of the spec (a stack's model.onnx and the logits bundle holding that
stack's own test logits on the same weights), one row per precision: onnx's full
checker on the file; the model loaded with `threads` threads; the logits of the whole
test split compared with the exporting stack's (agreement of the argmax, largest
absolute difference, test accuracy); then calls timed as the stacks' inference mode
times them (docs/stack-contract.md, "Inference mode"). ONNX Runtime gives an f32 row;
OpenVINO an f32 row and a bf16 row, the latter skipped, saying why, where the CPU has
no bf16. A file that is missing, breaks the export contract (one input `input`, one
output `logits`), fails the checker or fails to load or run makes its row `failed`, the
reason naming the file, and the other rows go on; a runtime that is not installed makes
every row `skipped`. The document is written atomically to `out`.

Imports only numpy, the runtimes and dlrosetta modules that need nothing else: the
environment holds nothing more.

Twins: python/dlrosetta/stacks/train.py (inference mode; both time calls with
dlrosetta.stopwatch.time_calls).
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from dlrosetta.checksum import sha256_file
from dlrosetta.measurements import write_json_atomic
from dlrosetta.npy import read_bundle
from dlrosetta.stopwatch import time_calls

RUNTIMES = ("onnxruntime", "openvino")
#: Rows each runtime gives per export, one per precision.
PRECISIONS = {"onnxruntime": ("f32",), "openvino": ("f32", "bf16")}
#: Test samples per call when the whole split is evaluated (the dynamic batch).
EVAL_BATCH = 256
INPUT, OUTPUT = "input", "logits"
REQUIRED = ("runtime", "model", "dataset", "shards", "threads", "batch_sizes", "warmup_calls", "min_calls",
            "max_calls", "min_seconds", "exports", "out")

Run = Callable[[np.ndarray], np.ndarray]


class RowFailed(Exception):
    """This row cannot go on; the message names the file and says why."""


@contextmanager
def failing_as(what: str):
    """Any error inside becomes RowFailed(`what`: the error)."""
    try:
        yield
    except RowFailed:
        raise
    except Exception as e:
        raise RowFailed(f"{what}: {type(e).__name__}: {e}") from e


# -- the runtimes: each loads a file into a `run` callable ----------------------------------

def ort_loader(threads: int):
    import onnxruntime as ort

    def load(path: str, precision: str) -> Run:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT], {INPUT: x})[0]

    return load, importlib.metadata.version("onnxruntime"), {}


def openvino_loader(threads: int):
    import openvino as ov

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    unavailable = {} if "BF16" in capabilities else {
        "bf16": f"the CPU offers no bf16 (OpenVINO's CPU OPTIMIZATION_CAPABILITIES: {', '.join(capabilities)})"}

    def load(path: str, precision: str) -> Run:
        compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                    "INFERENCE_PRECISION_HINT": precision,
                                                    "PERFORMANCE_HINT": "LATENCY"})
        used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if used != precision:  # the default on a bf16 CPU is bf16: the f32 row must be f32
            raise RowFailed(f"{path}: OpenVINO compiled it at {used}, not the {precision} asked for")
        request = compiled.create_infer_request()
        output = compiled.output(OUTPUT)
        # Synchronous; the input is shared (made once, as the stacks' is), the output
        # copied out of the request's memory into a NumPy array.
        return lambda x: request.infer({INPUT: x}, share_inputs=True, share_outputs=False)[output]

    return load, importlib.metadata.version("openvino"), unavailable


LOADERS = {"onnxruntime": ort_loader, "openvino": openvino_loader}


# -- one export -----------------------------------------------------------------------------

def check_file(path: str) -> dict:
    """sha256, opset and producer of the file, its input and output names, and onnx's
    full checker (shape inference included). Raises RowFailed naming the file where it
    is missing, invalid or breaks the export contract."""
    import onnx

    if not Path(path).is_file():
        raise RowFailed(f"ONNX file not found: {path}")
    info = {"onnx_sha256": sha256_file(path)}
    with failing_as(f"{path} is not a readable ONNX model"):
        proto = onnx.load(path, load_external_data=False)
    info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    info["producer"] = f"{proto.producer_name} {proto.producer_version}".strip() or None
    weights = {t.name for t in proto.graph.initializer}  # older exporters list them as inputs too
    inputs = [i.name for i in proto.graph.input if i.name not in weights]
    outputs = [o.name for o in proto.graph.output]
    if (inputs, outputs) != ([INPUT], [OUTPUT]):
        raise RowFailed(f"{path} has inputs {inputs} and outputs {outputs}: the export contract says one "
                        f"input {INPUT!r}, one output {OUTPUT!r}")
    with failing_as(f"{path} fails onnx's checker"):
        onnx.checker.check_model(path, full_check=True)
    info["checker"] = "ok"
    return info


def reference_logits(export: dict) -> np.ndarray:
    """The exporting stack's own test logits, from its logits bundle."""
    with failing_as(f"logits of {export['stack']} not readable from {export['logits']}"):
        arrays, _ = read_bundle(export["logits"], "logits", [export["stack"]])
    return arrays[export["stack"]]


def whole_split(run: Run, x: np.ndarray) -> np.ndarray:
    return np.concatenate([run(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


def compare(logits: np.ndarray, reference: np.ndarray, y: np.ndarray, path: str) -> dict:
    if logits.shape != reference.shape:
        raise RowFailed(f"{path} gives logits of shape {logits.shape}, the stack's are {reference.shape}")
    diff = float(np.max(np.abs(logits.astype(np.float64) - reference)))
    return {"agreement": float(np.mean(logits.argmax(axis=1) == reference.argmax(axis=1))),
            # NaN (a broken model) is no JSON number: reported as null, agreement says the rest.
            "max_abs_logit_diff": diff if np.isfinite(diff) else None,
            "test_accuracy": float(np.mean(logits.argmax(axis=1) == y))}


def empty_row(stack: str, precision: str, status: str, reason: Optional[str]) -> dict:
    return {"stack": stack, "precision": precision, "status": status, "reason": reason, "onnx_sha256": None,
            "opset": None, "producer": None, "checker": None, "agreement": None, "max_abs_logit_diff": None,
            "test_accuracy": None, "load_seconds": None, "batches": None}


def run_row(spec: dict, export: dict, precision: str, load: Callable[[str, str], Run], x: np.ndarray,
            y: np.ndarray) -> dict:
    row = empty_row(export["stack"], precision, "ok", None)
    path = export["onnx"]
    try:
        row.update(check_file(path))
        reference = reference_logits(export)
        with failing_as(f"{path} does not load in {spec['runtime']}"):
            start = time.perf_counter()
            run = load(path, precision)
            row["load_seconds"] = time.perf_counter() - start
        with failing_as(f"{path} fails to run in {spec['runtime']}"):
            row.update(compare(whole_split(run, x), reference, y, path))
            batches = []
            for batch_size in spec["batch_sizes"]:
                inputs = np.ascontiguousarray(x[np.arange(batch_size) % len(x)])
                seconds = time_calls(run, inputs, spec["warmup_calls"], spec["min_calls"], spec["max_calls"],
                                     spec["min_seconds"])
                batches.append({"batch_size": batch_size, "warmup_calls": spec["warmup_calls"],
                                "call_seconds": seconds})
            row["batches"] = batches
    except RowFailed as e:
        row.update(status="failed", reason=str(e))
    return row


def run_spec(spec: dict) -> dict:
    missing = [k for k in REQUIRED if k not in spec]
    if missing or spec.get("runtime") not in RUNTIMES:
        raise SystemExit(f"onnx_runner: bad spec: missing {missing}, runtime {spec.get('runtime')!r} "
                         f"(one of {RUNTIMES})")
    runtime = spec["runtime"]
    doc = {"runtime": runtime, "runtime_version": None, "onnx_version": None, "model": spec["model"],
           "dataset": spec["dataset"], "threads": spec["threads"], "rows": []}
    try:
        import onnx  # the checker: rows need it as much as the runtime

        doc["onnx_version"] = onnx.__version__
        load, doc["runtime_version"], unavailable = LOADERS[runtime](spec["threads"])
    except ImportError as e:
        reason = f"{runtime} cannot run here: {type(e).__name__}: {e}"
        doc["rows"] = [empty_row(ex["stack"], p, "skipped", reason)
                       for ex in spec["exports"] for p in PRECISIONS[runtime]]
        return doc
    arrays, _ = read_bundle(spec["shards"], "shards", ["x_test", "y_test"])
    for export in spec["exports"]:
        for precision in PRECISIONS[runtime]:
            if precision in unavailable:
                row = empty_row(export["stack"], precision, "skipped", unavailable[precision])
            else:
                row = run_row(spec, export, precision, load, arrays["x_test"], arrays["y_test"])
            print(f"[onnx_runner] {runtime} {export['stack']} {precision}: {row['status']} "
                  f"{row['reason'] or ''}".rstrip(), file=sys.stderr, flush=True)
            doc["rows"].append(row)
    return doc


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dlrosetta.onnx_runner SPEC.json", file=sys.stderr)
        return 2
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    write_json_atomic(spec["out"], run_spec(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
