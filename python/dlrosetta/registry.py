"""Every stack dlrosetta knows: language, framework, backend, environment, entry point.

A stack is run by the launcher as `<interpreter> <entry...> <run-spec.json>` with the
stack's extra environment variables and the thread variables (docs/stack-contract.md).
Adding a stack is adding an entry here; nothing else in the workflow changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    id: str
    language: str                 # python | r | julia
    framework: str
    backend: Optional[str]
    #: Python environment (envs/<env>.txt, built by the workflow into .venvs/<env>):
    #: the stack's interpreter for Python stacks, the embedded Python for R's reticulate.
    env: Optional[str]
    #: Program run with the entry arguments: "python" means the env's interpreter.
    runtime: str
    entry: tuple[str, ...]
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_python_env(self) -> bool:
        return self.env is not None


def _keras(backend: str) -> Stack:
    return Stack(f"keras-{backend}", "python", "keras", backend, "keras", "python",
                 ("-m", "dlrosetta.stacks.keras"), {"KERAS_BACKEND": backend})


STACKS: dict[str, Stack] = {s.id: s for s in (
    Stack("pytorch", "python", "torch", None, "torch", "python", ("-m", "dlrosetta.stacks.pytorch")),
    Stack("tensorflow", "python", "tensorflow", None, "tensorflow", "python",
          ("-m", "dlrosetta.stacks.tensorflow")),
    _keras("tensorflow"),
    _keras("jax"),
    _keras("torch"),
    Stack("r-keras", "r", "keras", "tensorflow", "r-keras", "Rscript",
          ("--vanilla", str(REPO / "r" / "inst" / "run_stack.R")), {"KERAS_BACKEND": "tensorflow"}),
    Stack("julia-native", "julia", "julia-native", None, None, "julia",
          (f"--project={REPO / 'julia'}", "--startup-file=no", str(REPO / "julia" / "bin" / "run_stack.jl"))),
)}


def get_stack(stack_id: str) -> Stack:
    try:
        return STACKS[stack_id]
    except KeyError:
        raise KeyError(f"unknown stack {stack_id!r}; known stacks: {', '.join(STACKS)}") from None


def environments() -> list[str]:
    return sorted({s.env for s in STACKS.values() if s.env})
