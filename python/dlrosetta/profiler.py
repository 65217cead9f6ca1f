"""Profile mode's tracer: one block of training steps under the framework's own profiler,
its trace written as Chrome trace-event JSON (gzip) beside the profile JSON
(docs/profile.md; python/dlrosetta/profile.py classifies it).

Each framework's profiler is asked for op-level events, the kernels or graph ops that
name the work (aten::mkldnn_convolution, _MklNativeConv2DBackpropFilter, XLA thunks
named by their HLO op, MXNet's Convolution), and not for Python frames, which would
drown them. Intermediate files (TensorFlow's and JAX's XSpace, MXNet's dump) go to a
scratch folder that is removed, so only the profiled block's trace stays.

  torch       torch.profiler, CPU (and CUDA where the build supports it): aten ops,
              nested (aten::conv2d > ... > aten::mkldnn_convolution), autograd nodes
              (ConvolutionBackward0 > aten::convolution_backward), Optimizer.step#SGD.step,
              all inside one "PyTorch Profiler (0)" span.
  tensorflow  tf.profiler.experimental: an XSpace whose host plane holds the executor's
              ops by type on the tf_Compute threads (_MklNativeConv2D,
              _MklNativeConv2DBackpropInput, _MklNativeFusedBatchNormV3, GatherV2,
              ResourceApplyMomentum; args.long_name "<node>:<type>") inside
              ExecutorState::Process and ThreadpoolListener::Region spans, and the eager
              runtime on the python thread (EagerExecute, "EagerLocalExecute: <op>");
              converted to JSON by the converter TensorFlow ships (xspace_to_tools_data,
              tool "trace_viewer@"), which adds the Region spans and drops memory events.
  jax         jax.profiler, Python tracer off, its Perfetto JSON: XLA:CPU runs a program
              as thunks, each an event named by its HLO instruction (convolution.4,
              conv_general_dilated.20, ynn_fusion.37, transpose_copy_fusion, dot.2; each
              followed by a tiny "end: <name>" marker), args hlo_op and hlo_module; plus
              PjRt dispatch on the python thread.
  mxnet       mx.profiler with profile_all: operators (Convolution, _backward_Convolution,
              BatchNorm, multi_sgd_mom_update; B/E pairs, written as X events), C API
              calls (async b/e pairs), memory counters. Operators have events of their
              own only without bulk execution, which the MXNet stacks turn off in
              profile mode (python/dlrosetta/stacks/mxnet/__init__.py).

Used by python/dlrosetta/stacks/train.py and, through reticulate, by the R stacks (whose
shared loop, r/R/train.R, times the block inside it).

Twins: none (R stacks call this module)
"""
from __future__ import annotations

import glob
import gzip
import json
import re
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

#: The trace's file name in the output folder, and where XLA dumps its HLO there.
TRACE_NAME = "trace.json.gz"
XLA_DUMP = ".xla-dump"

Stop = Callable[[Path], None]


def _torch(scratch: Path) -> tuple[str, Stop]:
    import torch

    prof = torch.profiler.profile(activities=torch.profiler.supported_activities())
    prof.start()

    def stop(trace: Path) -> None:
        prof.stop()
        prof.export_chrome_trace(str(trace))  # gzip: the name ends .gz

    return f"torch.profiler (torch {torch.__version__})", stop


def _tensorflow(scratch: Path) -> tuple[str, Stop]:
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    tf.profiler.experimental.start(str(scratch))

    def stop(trace: Path) -> None:
        tf.profiler.experimental.stop()
        xspaces = glob.glob(str(scratch / "plugins" / "profile" / "*" / "*.xplane.pb"))
        data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(xspaces, "trace_viewer@")
        if not ok:
            raise RuntimeError(f"TensorFlow's trace converter failed on {xspaces}: {data[:500]!r}")
        trace.write_bytes(gzip.compress(data))

    return f"tf.profiler.experimental (tensorflow {tf.__version__})", stop


def xla_dump_flags(out_dir: Path) -> str:
    """XLA flags that dump every compiled module's optimised HLO under out_dir, so that
    profile mode can say what a fusion computes; set before the framework loads."""
    return f"--xla_dump_to={out_dir / XLA_DUMP} --xla_dump_hlo_as_text"


_HLO_MODULE = re.compile(r"^HloModule ([^\s,]+)")
_HLO_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
_HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (?:\([^=]*?\)|\S+) ([a-z][\w\-]*)\((?:.*?calls=%?([\w.\-]+))?")
#: Opcodes that make a fusion a convolution or GEMM (XLA:CPU fuses them with YNNPACK,
#: XNNPACK or oneDNN, under names such as ynn_fusion.12 that say nothing of them).
_GEMM_OPCODES = {"convolution", "dot"}


def hlo_fusion_categories(dump: Path) -> dict[tuple[str, str], str]:
    """(HLO module, instruction) -> "conv_gemm" for every fusion of the dumped optimised
    modules that computes a convolution or a dot."""
    out = {}
    for path in dump.glob("*after_optimizations.txt"):
        module, computation, opcodes, calls = None, None, {}, {}
        for line in path.read_text().splitlines():
            if m := _HLO_MODULE.match(line):
                module = m.group(1)
            elif m := _HLO_COMPUTATION.match(line):
                computation = m.group(1)
                opcodes.setdefault(computation, set())
            elif (m := _HLO_INSTRUCTION.match(line)) and computation:
                name, opcode, called = m.groups()
                opcodes[computation].add(opcode)
                if called:
                    calls[name] = called
        for name, called in calls.items():
            if opcodes.get(called, set()) & _GEMM_OPCODES:
                out[(module, name)] = "conv_gemm"
    return out


def _jax(scratch: Path) -> tuple[str, Stop]:
    import jax

    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    jax.profiler.start_trace(str(scratch), create_perfetto_trace=True, profiler_options=options)

    def stop(trace: Path) -> None:
        jax.profiler.stop_trace()
        (perfetto,) = glob.glob(str(scratch / "plugins" / "profile" / "*" / "perfetto_trace.json.gz"))
        # Each thunk event names its HLO instruction; a fusion holding a convolution
        # or dot gets that category, the rest keep their names for the classifier.
        categories = hlo_fusion_categories(trace.parent / XLA_DUMP)
        with gzip.open(perfetto, "rt") as f:
            data = json.load(f)
        for event in data.get("traceEvents", []) if isinstance(data, dict) else data:
            args = event.get("args") or {}
            category = categories.get((args.get("hlo_module"), args.get("hlo_op")))
            if category:
                event["cat"] = category
        with gzip.open(trace, "wt") as f:
            json.dump(data, f)

    return f"jax.profiler (jax {jax.__version__}), fusions read from XLA's optimised HLO", stop


def complete_events(events: list[dict]) -> list[dict]:
    """B/E pairs (MXNet's form) as complete (X) events, the form every other profiler
    writes; other events as they are, an E without its B dropped. A profiler writes each
    op's B and E one after the other on its thread, so a stack per thread pairs them.
    MXNet's stacks convert their dump with it, and dlrosetta.profile reads any trace
    through it."""
    out, begun = [], {}
    for e in events:
        thread = (e.get("pid"), e.get("tid"))
        if e.get("ph") == "B":
            begun.setdefault(thread, []).append(e)
        elif e.get("ph") == "E":
            if begun.get(thread):
                b = begun[thread].pop()
                out.append({**b, "ph": "X", "dur": e["ts"] - b["ts"]})
        else:
            out.append(e)
    return out


def _mxnet(scratch: Path) -> tuple[str, Stop]:
    import mxnet as mx

    # Bulk execution decides whether operators have events of their own (the MXNet
    # stacks turn it off in profile mode): the profiler's name says how it was set.
    bulk = "".join(f"; {k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MXNET_EXEC_BULK_EXEC"))

    dump = scratch / "mxnet-profile.json"
    mx.profiler.set_config(profile_all=True, aggregate_stats=False, filename=str(dump))
    mx.profiler.set_state("run")

    def stop(trace: Path) -> None:
        mx.nd.waitall()  # operators still queued in the engine belong to the block
        mx.profiler.set_state("stop")
        mx.profiler.dump(finished=True)
        doc = json.loads(dump.read_text())
        doc["traceEvents"] = complete_events(doc["traceEvents"])
        trace.write_bytes(gzip.compress(json.dumps(doc).encode()))

    return f"mx.profiler (mxnet {mx.__version__}{bulk})", stop


PROFILERS: dict[str, Callable[[Path], tuple[str, Stop]]] = {
    "torch": _torch, "tensorflow": _tensorflow, "jax": _jax, "mxnet": _mxnet}


class trace_block:
    """`with trace_block(framework, out_dir) as block: ...` traces the block's work with
    `framework`'s profiler; on exit `block.trace` is the trace's file name (relative to
    out_dir) and `block.profiler` the profiler's name and version. Whoever times the
    block starts the clock inside the `with`, so the profiler's start, stop and export
    are not in its time."""

    def __init__(self, framework: str, out_dir: str | Path):
        if framework not in PROFILERS:
            raise ValueError(f"no profiler for framework {framework!r}; known: {sorted(PROFILERS)}")
        self.framework, self.out_dir = framework, Path(out_dir)
        self.trace: str | None = None
        self.profiler: str | None = None

    def __enter__(self) -> "trace_block":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix=".profiler-", dir=self.out_dir))
        self.profiler, self._stop = PROFILERS[self.framework](self._scratch)
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self._stop(self.out_dir / TRACE_NAME)
            self.trace = TRACE_NAME
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
            shutil.rmtree(self.out_dir / XLA_DUMP, ignore_errors=True)
        return False
