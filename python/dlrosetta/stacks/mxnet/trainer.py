"""The MXNet stack's Trainer: Gluon the way MXNet's own tutorials and model zoo train for
speed, data resident on the device.

- The network is hybridised with static_alloc and static_shape: forward and backward run
  as one cached graph (CachedOp) whose memory is planned once and reused every step,
  instead of Python dispatching operator by operator.
- The step is Gluon's idiom: per-sample losses under autograd.record, loss.backward(),
  Trainer.step(batch_size), which scales the summed gradient by 1/batch_size inside the
  update kernel (rescale_grad): the gradient of the batch's mean loss.
- The optimisers are MXNet's own update kernels, both already in docs/models.md's form,
  so nothing is rescaled: SGD's aggregated multi_sgd_mom_update (state = m*state + lr*g;
  w -= state, the heavy ball for a constant rate) and Adam's adam_update with
  lr_t = lr*sqrt(1-b2^t)/(1-b1^t) and w -= lr_t*m/(sqrt(v)+eps) (MXNet's Adam docstring
  writes the correction the other way up; its code is the documented form). The
  embedding's gradient is dense (Embedding's sparse_grad off), so Adam updates every row.
- MXNet's engine is asynchronous: Python pushes a step's operators and goes on to the
  next; an epoch waits for all of them (nd.waitall) before its mean loss is read. The
  loss is summed on the device, so nothing syncs inside the epoch.
- Images are transposed to NCHW once (oneDNN's layout here; MXNet 1.9's NHWC
  convolutions fail on CPU); every batch is an nd.take on the device.
- Inference is the same hybridised graph under autograd.predict_mode, not recording:
  batch norm uses its moving statistics and updates nothing. ONNX export is mx2onnx
  (mx.onnx.export_model) of the network's symbol behind a transpose from the shards'
  NHWC (export_onnx_model).

Twins: python/dlrosetta/stacks/pytorch/trainer.py, python/dlrosetta/stacks/keras/trainer.py,
       r/stacks/r-mxnet/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from dlrosetta.model_spec import RESNET
from dlrosetta.stacks.mxnet import configure
from dlrosetta.stacks.mxnet.lstm import build_lstm, lstm_parameters
from dlrosetta.stacks.mxnet.resnet import build_resnet, resnet_parameters
from dlrosetta.stacks.train import Trainer, pick_accelerator

#: The newest opset mx2onnx 1.9.1 has translations for.
MX2ONNX_OPSET = 13


def visible_gpu() -> Optional[str]:
    """The first GPU MXNet sees (MXNet names none), None without one (the CPU wheel)."""
    return "gpu:0" if mx.context.num_gpus() > 0 else None


def make_trainer(params: list, opt: Mapping) -> gluon.Trainer:
    """gluon.Trainer over the trainable parameters with the run spec's optimiser (one
    device: no kvstore, the updates run in this process)."""
    if opt["name"] == "sgd":
        return gluon.Trainer(params, "sgd", {"learning_rate": opt["learning_rate"], "momentum": opt["momentum"]})
    if opt["name"] == "adam":
        return gluon.Trainer(params, "adam", {"learning_rate": opt["learning_rate"], "beta1": opt["beta_1"],
                                              "beta2": opt["beta_2"], "epsilon": opt["epsilon"]})
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def kernel_info(images: bool, accelerator: Optional[str]) -> tuple[bool, str]:
    """fused_kernel and kernel_notes for the record (CPU kernels checked with
    DNNL_VERBOSE); the R MXNet stack reports through this too, as it runs the same graph."""
    step = "hybridised Gluon graph (static_alloc, static_shape)"
    if accelerator:
        return True, (f"cuDNN convolutions, NCHW; {step}" if images else f"cuDNN LSTM (fused RNN operator); {step}")
    if images:
        return True, (f"oneDNN convolutions, batch norm and ReLU, NCHW; shortcut A's channel padding is MXNet's "
                      f"Pad operator on a 5-D view (Pad, _backward_Pad: not oneDNN; concatenating zeros instead "
                      f"crashes oneDNN 2.4's concat backward at small widths); {step}; aggregated SGD momentum "
                      f"kernel")
    return True, f"oneDNN LSTM (fused RNN operator, forward and backward; h2h bias a constant zero); {step}; adam_update"


def check_parameters(net: gluon.HybridBlock, parameters: Mapping[str, tuple], names: list[str]) -> None:
    """Fail naming any canonical tensor without a Gluon parameter, or any trained Gluon
    parameter (or BN statistic) without a canonical tensor."""
    mapped = {param for param, _ in parameters.values()}
    missing = sorted(set(names) - set(parameters))
    extra = sorted(set(parameters) - set(names))
    left = sorted(p.name for p in net.collect_params().values() if p not in mapped and p.grad_req != "null")
    if missing or extra or left:
        raise ValueError(f"canonical tensors {missing} have no Gluon parameter, {extra} are not canonical, "
                         f"Gluon parameters {left} have no canonical tensor")


def permute(array: np.ndarray, axes: Optional[tuple[int, ...]]) -> np.ndarray:
    """array.transpose(axes); None leaves it as it is (where transpose would reverse it)."""
    return array if axes is None else array.transpose(axes)


@contextmanager
def newest_onnx_opset(version: int) -> Iterator[None]:
    """onnx as mx2onnx 1.9.1 was written for: one whose newest opset is `version`.
    mx2onnx picks its translations, checks the graph and declares the model's opset by
    the installed onnx's newest (23 in onnx 1.18), while its translations are of opset
    13 and older: ReduceMean's axes an attribute (an input since opset 18), so declared
    as 23 the graph is invalid. onnx has no setting for this, so its two module-level
    values are swapped for the export."""
    import onnx.checker
    import onnx.defs

    newest, imports = onnx.defs.onnx_opset_version, onnx.checker.DEFAULT_CONTEXT.opset_imports
    onnx.defs.onnx_opset_version = lambda: version
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {"": version}
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = newest
        onnx.checker.DEFAULT_CONTEXT.opset_imports = imports


def export_onnx_model(net: gluon.HybridBlock, sample: np.ndarray, path: str) -> dict:
    """Write a Gluon network as ONNX (docs/stack-contract.md, "Inference mode") with
    mx2onnx: one input `input` in the layout and dtype of `sample` (the shards': NHWC
    float32 images, transposed to the network's NCHW inside the graph, or int32 tokens),
    one output `logits`, the batch dimension `batch`, batch norm on its moving statistics.
    Returns {"exporter", "opset"}. The R MXNet stack exports through this too."""
    import onnx

    data = mx.sym.var("input")
    logits = mx.sym.identity(net(mx.sym.transpose(data, axes=(0, 3, 1, 2)) if sample.ndim == 4 else data),
                             name="logits")
    params = {p.name: p.data() for p in net.collect_params().values()}
    with newest_onnx_opset(MX2ONNX_OPSET):
        mx.onnx.export_model(logits, params, in_shapes=[sample.shape], in_types=[sample.dtype], onnx_file_path=path,
                             dynamic=True, dynamic_input_shapes=[(None, *sample.shape[1:])])
    model = onnx.load(path)
    graph = model.graph
    # mx2onnx lists the weights among the graph's inputs too: the data is its only input.
    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    # mx2onnx leaves the batch dimension unnamed, and the classes unknown.
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    _, [(_, classes)], _ = logits.infer_shape(input=sample.shape)
    graph.output[0].type.tensor_type.shape.dim[1].dim_value = classes
    model.producer_name, model.producer_version = "mx2onnx", mx.__version__
    onnx.save(model, path)
    return {"exporter": f"mx2onnx (mxnet {mx.__version__}, onnx {onnx.__version__})", "opset": MX2ONNX_OPSET}


class MXNetTrainer(Trainer):
    framework = "mxnet"
    profiler = "mxnet"

    def __init__(self, spec, model, weights):
        super().__init__(spec, model, weights)
        configure(spec.threads, profile=spec.check == "profile")  # mxnet is imported: checks what it loaded with
        self.accelerator = pick_accelerator(spec.device, visible_gpu(), "mxnet")
        self.ctx = mx.gpu(0) if self.accelerator else mx.cpu()
        mx.random.seed(spec.seed)
        self.images = spec.model == RESNET

        build, parameters = (build_resnet, resnet_parameters) if self.images else (build_lstm, lstm_parameters)
        self.net = build(spec.model_config)
        self.net.initialize(mx.init.Zero(), ctx=self.ctx)
        self.parameters = parameters(self.net)
        check_parameters(self.net, self.parameters, model.names())
        self.load_weights(weights)
        self.net.hybridize(static_alloc=True, static_shape=True)
        self.params = [p for p in self.net.collect_params().values() if p.grad_req != "null"]
        self.trainer = make_trainer(self.params, spec.optimizer)
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss()
        self.fused_kernel, self.kernel_notes = kernel_info(self.images, self.accelerator)

    def framework_version(self) -> str:
        return mx.__version__

    def device_name(self) -> str:
        return self.accelerator or "cpu"

    def parameter_count(self) -> int:
        return int(sum(np.prod(p.shape) for p in self.params))

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self.in_spec_order({name: permute(param.data().asnumpy(), None if axes is None else np.argsort(axes))
                                   for name, (param, axes) in self.parameters.items()})

    def load_weights(self, weights) -> None:
        # set_data copies into the parameters' arrays, which the cached graph and the
        # optimiser hold.
        for name, (param, axes) in self.parameters.items():
            param.set_data(nd.array(np.ascontiguousarray(permute(weights[name], axes)), ctx=self.ctx,
                                    dtype="float32"))

    def inference_input(self, x: np.ndarray) -> nd.NDArray:
        if self.images:  # NHWC -> NCHW, once
            return nd.array(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), ctx=self.ctx, dtype="float32")
        return nd.array(x, ctx=self.ctx, dtype="int32")

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_train = self.inference_input(x)
        # float32 labels: what SoftmaxCrossEntropyLoss's pick takes.
        self.y_train = nd.array(y, ctx=self.ctx, dtype="float32")

    def _step(self, idx: nd.NDArray, batch_size: int) -> nd.NDArray:
        x, y = nd.take(self.x_train, idx), nd.take(self.y_train, idx)
        with autograd.record():
            loss = self.loss(self.net(x), y)
        loss.backward()
        self.trainer.step(batch_size)
        return loss.mean()

    def train_epoch(self, batches: np.ndarray) -> float:
        idx = nd.array(batches, ctx=self.ctx, dtype="int32")
        total = nd.zeros((1,), ctx=self.ctx)
        for k in range(len(batches)):
            total += self._step(idx[k], batches.shape[1])
        nd.waitall()  # every update of the epoch done, not only the losses
        return float(total.asscalar()) / len(batches)

    def predict(self, inputs: nd.NDArray) -> np.ndarray:
        with autograd.predict_mode():
            return self.net(inputs).asnumpy()  # the copy to the host waits for the engine

    def export_onnx(self, path: str) -> dict:
        return export_onnx_model(self.net, self.sample_input(1), path)
