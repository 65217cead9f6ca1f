"""The PyTorch stack's Trainer: an eager training loop, data resident on the device.

Eager, not torch.compile: on 2 CPU cores inductor took 1-2 minutes to compile and was
no faster for the ResNet (within 1%) and 15% slower for the LSTM (whose hot op is
already one fused oneDNN kernel). The optimizers are torch's fused CPU/GPU kernels.

Data lives on the device once; every batch is an index_select there. Images stay NHWC
and a batch is viewed as NCHW in channels_last memory (no copy): oneDNN's preferred
convolution layout on CPU, and what cuDNN's tensor cores want.

Inference runs the model in eval() (moving statistics) under torch.inference_mode (no
autograd bookkeeping), then puts the training mode back. ONNX export is torch.onnx's
dynamo exporter (torch.export, then onnxscript's op library) of the model behind a
wrapper that takes the shards' layout.

Twins: python/dlrosetta/stacks/tensorflow/trainer.py, python/dlrosetta/stacks/keras/trainer.py,
       r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlrosetta.model_spec import RESNET
from dlrosetta.stacks.train import Trainer, pick_accelerator
from dlrosetta.stacks.pytorch import configure
from dlrosetta.stacks.pytorch.lstm import build_lstm, lstm_canonical, lstm_state_dict
from dlrosetta.stacks.pytorch.resnet import build_resnet, resnet_canonical, resnet_state_dict

ONNX_OPSET = 18  # the dynamo exporter's own default (onnxscript's torchlib targets it)


class Adam(torch.optim.Adam):
    """Adam in the form Keras and TensorFlow use (and docs/models.md's other stacks):
    w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + eps). PyTorch adds eps after the bias
    correction, to sqrt(v)/sqrt(1-b2^t); with eps=1e-8 that trains a visibly different
    trajectory (rare embedding rows, tiny gradients). Scaling eps by 1/sqrt(1-b2^t)
    before each step makes the two updates identical and keeps the fused kernel."""

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0, fused=True)
        self.epsilon, self.steps = eps, 0

    def step(self, closure=None):
        self.steps += 1
        for group in self.param_groups:
            group["eps"] = self.epsilon / math.sqrt(1.0 - group["betas"][1] ** self.steps)
        return super().step(closure)


class TorchTrainer(Trainer):
    framework = "torch"
    profiler = "torch"

    def __init__(self, spec, model, weights):
        super().__init__(spec, model, weights)
        self.accelerator = pick_accelerator(spec.device, configure(spec.threads), "torch")
        torch.manual_seed(spec.seed)
        self.device = torch.device("cuda:0" if self.accelerator else "cpu")
        self.images = spec.model == RESNET
        self.memory_format = torch.channels_last if self.images else torch.contiguous_format

        build = build_resnet if self.images else build_lstm
        self.to_state, self.from_state = ((resnet_state_dict, resnet_canonical) if self.images else
                                          (lstm_state_dict, lstm_canonical))
        self.net = build(spec.model_config).to(self.device, memory_format=self.memory_format).train()
        self.load_weights(weights)

        opt = spec.optimizer
        params = list(self.net.parameters())
        if opt["name"] == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=opt["learning_rate"], momentum=opt["momentum"],
                                             nesterov=False, weight_decay=0.0, fused=True)
        elif opt["name"] == "adam":
            self.optimizer = Adam(params, opt["learning_rate"], (opt["beta_1"], opt["beta_2"]), opt["epsilon"])
        else:
            raise ValueError(f"unknown optimizer {opt['name']!r}")

        self.fused_kernel = self.accelerator is not None or torch.backends.mkldnn.is_available()
        if self.accelerator:
            self.kernel_notes = ("cuDNN convolutions and batch norm, channels_last" if self.images else
                                 "cuDNN LSTM (torch._VF.lstm, second bias a constant zero)")
        else:
            self.kernel_notes = ("oneDNN convolutions (aten::mkldnn_convolution), channels_last; "
                                 "eager loop, fused SGD" if self.images else
                                 "oneDNN LSTM (aten::mkldnn_rnn_layer forward and backward, second bias "
                                 "a constant zero); eager loop, fused Adam")

    def framework_version(self) -> str:
        return torch.__version__

    def device_name(self) -> str:
        return f"cuda:0 ({self.accelerator})" if self.accelerator else "cpu"

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self.in_spec_order(self.from_state(self.net.state_dict(), self.model.names()))

    def load_weights(self, weights) -> None:
        # Copies into the existing tensors: the optimizer's references, the device and
        # the channels_last strides stay.
        self.net.load_state_dict(self.to_state(weights), strict=True)

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device, None if self.images else torch.int64)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        # NHWC viewed as NCHW is a channels_last tensor: no copy.
        return x.permute(0, 3, 1, 2) if self.images else x

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_train = self._inputs(x)
        self.y_train = torch.from_numpy(y).to(self.device, torch.int64)

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        x = self._batch(self.x_train.index_select(0, idx))
        loss = F.cross_entropy(self.net(x), self.y_train.index_select(0, idx))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self, batches: np.ndarray) -> float:
        self.net.train()
        idx = torch.from_numpy(batches).to(self.device, torch.int64)
        total = torch.zeros((), device=self.device)
        for row in idx:
            total += self._step(row)
        return total.item() / len(idx)

    def inference_input(self, x: np.ndarray) -> torch.Tensor:
        return self._batch(self._inputs(x))

    def predict(self, inputs: torch.Tensor) -> np.ndarray:
        training = self.net.training
        self.net.eval()
        with torch.inference_mode():
            logits = self.net(inputs).cpu().numpy()  # the copy to the host waits for the device
        self.net.train(training)
        return logits

    def export_onnx(self, path: str) -> dict:
        import onnxscript  # the dynamo exporter's op library; only exports need it

        training = self.net.training
        self.net.eval()
        # Two samples: torch.export specialises a dimension traced at size 1.
        sample = torch.from_numpy(self.sample_input(2)).to(self.device)
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(ShardsLayout(self.net, self.images), (sample,), path, dynamo=True,
                          input_names=["input"], output_names=["logits"], opset_version=ONNX_OPSET,
                          dynamic_shapes=({0: batch},), external_data=False, optimize=True, verbose=False)
        self.net.train(training)
        return {"exporter": f"torch.onnx.export (dynamo; torch {torch.__version__}, "
                            f"onnxscript {onnxscript.__version__})", "opset": ONNX_OPSET}


class ShardsLayout(nn.Module):
    """The model taking the shards' input as it is: NHWC float32 images (viewed as
    NCHW), or int32 token ids (widened to the int64 nn.Embedding indexes with)."""

    def __init__(self, net: nn.Module, images: bool):
        super().__init__()
        self.net, self.images = net, images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2) if self.images else x.long())
