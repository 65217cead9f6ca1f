"""The Keras 3 stacks' Trainer (keras-tensorflow, keras-jax, keras-torch): one code base,
the backend chosen by KERAS_BACKEND before Keras is imported.

Training is Keras's own compiled train step (model.compile + train_on_batch: a
tf.function on tensorflow, jax.jit on jax, eager on torch), fed batches in the epoch
order file's order: the data is on the device once, and each batch is a keras.ops.take
there; Keras never shuffles. Keras's jit_compile default stands: turning XLA on for
tensorflow (CPU) or torch.compile on for torch measured slower on 2 cores, and
model.fit over the epoch's gathered arrays no faster than train_on_batch.

Inference is Keras's predict_on_batch: the backend's compiled predict step (a tf.function,
jax.jit, or eager torch under no_grad) with training=False, so batch norm uses its moving
statistics and updates nothing; unlike model.predict, no data adapter, callbacks or
batching per call. ONNX export is Keras's model.export(format="onnx"), whose converter is
the backend's: tf2onnx, jax2onnx, or torch.onnx's TorchScript exporter.

Twins: r/stacks/r-keras/R/train.R + r/stacks/r-keras/R/keras.R (the same Keras calls from R),
       python/dlrosetta/stacks/pytorch/trainer.py, python/dlrosetta/stacks/tensorflow/trainer.py,
       julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import os
from importlib.metadata import version
from typing import Mapping, Optional

import keras
import numpy as np

from dlrosetta.model_spec import RESNET
from dlrosetta.stacks.train import Trainer, pick_accelerator
from dlrosetta.stacks.keras import layer_name
from dlrosetta.stacks.keras.lstm import build_lstm
from dlrosetta.stacks.keras.resnet import build_resnet

#: The newest opset tf2onnx 1.17 converts to; jax2onnx and torch.onnx write it too.
ONNX_OPSET = 18
#: Each backend's ONNX converter under model.export: its name in the report, and the
#: package whose version it reports.
ONNX_CONVERTERS = {"tensorflow": ("tf2onnx", "tf2onnx"), "jax": ("jax2onnx", "jax2onnx"),
                   "torch": ("torch.onnx TorchScript exporter, torch", "torch")}


def configure_backend(backend: str, threads: int) -> Optional[str]:
    """Give the backend's thread pools `threads` threads, before its first operation, and
    return the name of the first accelerator it sees (None: CPU only)."""
    if backend == "tensorflow":
        from dlrosetta.stacks.tensorflow import configure
    elif backend == "torch":
        from dlrosetta.stacks.pytorch import configure
    elif backend == "jax":
        return configure_jax(threads)
    else:
        raise ValueError(f"unsupported KERAS_BACKEND {backend!r} (tensorflow, jax or torch)")
    return configure(threads)


def configure_jax(threads: int) -> Optional[str]:
    # XLA sizes its CPU client's thread pool from NPROC (else the CPU affinity mask)
    # when the client starts, at the first jax.devices() below; no XLA flag sets it.
    os.environ["NPROC"] = str(threads)
    import jax

    gpus = [d for d in jax.devices() if d.platform != "cpu"]
    return gpus[0].device_kind if gpus else None


def canonical_variables(model: keras.Model, names: list[str]) -> dict[str, keras.Variable]:
    """The Keras variable holding each canonical tensor of `names` (Keras's layouts are
    the canonical ones). Fails naming the tensors or variables left unmatched."""
    variables = {f"{layer.name}/{v.name}": v for layer in model.layers for v in layer.weights}
    out = {}
    for name in names:
        prefix, variable = name.rsplit(".", 1)
        key = f"{layer_name(prefix)}/{variable}"
        if key not in variables:
            raise ValueError(f"canonical tensor {name!r} has no Keras variable {key!r}")
        out[name] = variables.pop(key)
    if variables:
        raise ValueError(f"Keras variables {sorted(variables)} have no canonical tensor")
    return out


def load_canonical_weights(model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assign every variable its canonical tensor (the R Keras stack can call this too)."""
    for name, v in canonical_variables(model, list(weights)).items():
        v.assign(weights[name])


def read_canonical_weights(model: keras.Model, names: list[str]) -> dict[str, np.ndarray]:
    """The inverse of load_canonical_weights: the canonical tensors `names` as host arrays."""
    return {name: keras.ops.convert_to_numpy(v) for name, v in canonical_variables(model, names).items()}


def export_onnx_model(model: keras.Model, path: str) -> dict:
    """Write a Keras model as ONNX (docs/stack-contract.md, "Inference mode") with Keras's
    model.export: one input `input` in the model's input layout and dtype, one output
    `logits`, the batch dimension `batch`, training=False. Returns {"exporter", "opset"}.
    The R Keras stack can export through this too."""
    import onnx

    x = model.inputs[0]
    signature = [keras.InputSpec(shape=(None, *x.shape[1:]), dtype=x.dtype, name="input")]
    model.export(path, format="onnx", verbose=False, input_signature=signature, opset_version=ONNX_OPSET)
    exported = onnx.load(path)
    graph = exported.graph
    # The converters name the output after the op producing it (Identity:0, add_out_28,
    # 641) and the batch dimension as they please (unk__77, Add641_dim_0).
    rename_value(graph, graph.output[0].name, "logits")
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(exported, path)
    converter, package = ONNX_CONVERTERS[keras.backend.backend()]
    return {"exporter": f"keras {keras.__version__} model.export ({converter} {version(package)})",
            "opset": ONNX_OPSET}


def rename_value(graph, old: str, new: str) -> None:
    """Rename a value of an ONNX graph wherever it is produced, used or declared."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


class Adam(keras.optimizers.Adam):
    """Keras's Adam, given dense gradients. On the tensorflow backend the embedding's
    gradient is tf.IndexedSlices with a row per token occurrence; Keras squares those
    rows before summing repeated ones, so its second moment is sum(g_i^2) instead of
    (sum g_i)^2 and the embedding update differs from Adam's (and from every other
    stack). Densifying first gives the documented Adam; other backends' gradients are
    dense already."""

    def apply(self, grads, trainable_variables=None):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            grads = [tf.convert_to_tensor(g) for g in grads]
        return super().apply(grads, trainable_variables)


def kernel_info(backend: str, images: bool, accelerator: Optional[str]) -> tuple[bool, str]:
    """fused_kernel and kernel_notes for the record (CPU kernels checked with ONEDNN_VERBOSE);
    the R Keras stack reports through this too, since the same Keras code runs there."""
    step = {"tensorflow": "train step a tf.function (Keras's default, no XLA, on CPU-only TensorFlow)",
            "jax": "train step XLA-compiled (jax.jit)",
            "torch": "train step eager (Keras's default for torch)"}[backend]
    if accelerator:
        return True, (f"cuDNN convolutions; {step}" if images else f"Keras LSTM on the cuDNN kernel; {step}")
    # Causes of the gaps the profiles show (docs/profile.md; the report puts the measured
    # breakdown beside these notes).
    if not images:
        loop = {"tensorflow": "a tf.while_loop of one _MklMatMul per step, executor overhead per step "
                              "(no fused LSTM kernel on CPU)",
                "jax": "a lax.scan, an XLA:CPU while loop of small GEMMs per step",
                "torch": "a Python loop of eager torch ops per time step (keras/src/backend/torch/rnn.py, "
                         "_fallback_lstm); it indexes the input projection x_proj[t] each step, and autograd's "
                         "SelectBackward writes a zero-filled gradient of the whole projection per step, the "
                         "profile's largest op"}[backend]
        return False, f"Keras LSTM on CPU: {loop}; its cuDNN kernel is GPU-only; {step}"
    fused, notes = {
        "tensorflow": (True, "oneDNN convolutions; batch norm from composed ops (Mean, SquaredDifference, Mul: "
                             "not the FusedBatchNorm the tensorflow stack gets)"),
        "jax": (False, "XLA:CPU convolutions (Eigen, YNNPACK fusions), each weight gradient computed on "
                       "transposed copies of activations and output gradients (transpose_copy_fusion); batch "
                       "norm and ReLU in fused elementwise loops"),
        "torch": (True, "oneDNN convolutions on NCHW: Keras keeps NHWC and permutes to NCHW and back around "
                        "each convolution (aten::contiguous copies); batch norm from composed ops (mean, pow, "
                        "sub, mul: no fused kernel)"),
    }[backend]
    return fused, f"{notes}; {step}"


class KerasTrainer(Trainer):
    framework = "keras"

    def __init__(self, spec, model, weights):
        super().__init__(spec, model, weights)
        self.backend = keras.backend.backend()
        self.profiler = self.backend  # the backend runs the ops
        self.accelerator = pick_accelerator(spec.device, configure_backend(self.backend, spec.threads),
                                            f"Keras's {self.backend} backend")
        # Held for the process's life: every variable, tensor and step goes to this device.
        keras.device("gpu:0" if self.accelerator else "cpu:0").__enter__()
        keras.utils.set_random_seed(spec.seed)
        self.images = spec.model == RESNET
        self.net = (build_resnet if self.images else build_lstm)(spec.model_config)
        self.load_weights(weights)

        opt = spec.optimizer
        if opt["name"] == "sgd":
            optimizer = keras.optimizers.SGD(opt["learning_rate"], momentum=opt["momentum"], nesterov=False)
        elif opt["name"] == "adam":
            optimizer = Adam(opt["learning_rate"], beta_1=opt["beta_1"], beta_2=opt["beta_2"],
                             epsilon=opt["epsilon"])
        else:
            raise ValueError(f"unknown optimizer {opt['name']!r}")
        self.net.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.fused_kernel, self.kernel_notes = kernel_info(self.backend, self.images, self.accelerator)

    def framework_version(self) -> str:
        return keras.__version__

    def device_name(self) -> str:
        return f"gpu:0 ({self.accelerator})" if self.accelerator else "cpu"

    def parameter_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.net.trainable_weights))

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self.in_spec_order(read_canonical_weights(self.net, self.model.names()))

    def load_weights(self, weights) -> None:
        load_canonical_weights(self.net, weights)

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_train = keras.ops.convert_to_tensor(x)
        self.y_train = keras.ops.convert_to_tensor(y)

    def train_epoch(self, batches: np.ndarray) -> float:
        total = 0.0
        for row in batches:  # train_on_batch returns the batch's loss, synchronised
            idx = keras.ops.convert_to_tensor(row)
            total += self.net.train_on_batch(keras.ops.take(self.x_train, idx, axis=0),
                                             keras.ops.take(self.y_train, idx, axis=0))
        return total / len(batches)

    def inference_input(self, x: np.ndarray):
        return keras.ops.convert_to_tensor(x)

    def predict(self, inputs) -> np.ndarray:
        return self.net.predict_on_batch(inputs)  # a host array: the step's work is done

    def export_onnx(self, path: str) -> dict:
        return export_onnx_model(self.net, path)
