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

Twins: python/dlrosetta/stacks/pytorch/trainer.py, python/dlrosetta/stacks/keras/trainer.py,
       r/stacks/r-mxnet/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

from typing import Mapping, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from dlrosetta.model_spec import RESNET
from dlrosetta.shards import Shards
from dlrosetta.stacks.mxnet import configure
from dlrosetta.stacks.mxnet.lstm import build_lstm, lstm_parameters
from dlrosetta.stacks.mxnet.resnet import build_resnet, resnet_parameters
from dlrosetta.stacks.train import Trainer, pick_accelerator

EVAL_BATCH = 1000


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


def load_parameters(net: gluon.HybridBlock, values: Mapping[gluon.Parameter, np.ndarray], ctx) -> None:
    """Initialise the network on ctx and set every parameter (BN moving statistics
    included) to its canonical value; fails naming any parameter left without one."""
    net.initialize(mx.init.Zero(), ctx=ctx)
    left = sorted(p.name for p in net.collect_params().values() if p not in values)
    if left:
        raise ValueError(f"Gluon parameters {left} have no canonical tensor")
    for param, value in values.items():
        param.set_data(nd.array(value, ctx=ctx, dtype=value.dtype))


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

        cfg = spec.model_config
        if self.images:
            self.net = build_resnet(cfg)
            values = resnet_parameters(self.net, weights)
        else:
            self.net = build_lstm(cfg)
            values = lstm_parameters(self.net, weights)
        load_parameters(self.net, values, self.ctx)
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

    def _inputs(self, x: np.ndarray) -> nd.NDArray:
        if self.images:  # NHWC -> NCHW, once
            return nd.array(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), ctx=self.ctx, dtype="float32")
        return nd.array(x, ctx=self.ctx, dtype="int32")

    def set_data(self, shards: Shards) -> None:
        self.x_train, self.x_test = self._inputs(shards.x_train), self._inputs(shards.x_test)
        # float32 labels: what SoftmaxCrossEntropyLoss's pick and the accuracy compare take.
        self.y_train = nd.array(shards.y_train, ctx=self.ctx, dtype="float32")
        self.y_test = nd.array(shards.y_test, ctx=self.ctx, dtype="float32")

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

    def evaluate(self) -> float:
        correct = nd.zeros((1,), ctx=self.ctx)
        for start in range(0, self.y_test.shape[0], EVAL_BATCH):  # not recording: BN moving statistics
            logits = self.net(self.x_test[start:start + EVAL_BATCH])
            correct += (logits.argmax(axis=1) == self.y_test[start:start + EVAL_BATCH]).sum()
        return float(correct.asscalar()) / self.y_test.shape[0]
