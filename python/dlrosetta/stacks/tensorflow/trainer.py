"""The native TensorFlow stack's Trainer: tf.function train steps with GradientTape and
TensorFlow's own fused optimizer kernels, data resident on the device (each batch a
tf.gather there).

No XLA (jit_compile): on 2 CPU cores it halved the ResNet's speed against TensorFlow's
oneDNN kernels. An epoch as one tf.function (a tf.while_loop over the steps) measured
no faster than a step per call.

The optimizers are the training ops every TensorFlow optimizer is built on:
ResourceApplyMomentum (accum = m*accum + g; w -= lr*accum: the heavy ball of
docs/models.md) and ResourceApplyAdam (lr_t = lr*sqrt(1-b2^t)/(1-b1^t);
w -= lr_t*m/(sqrt(v)+eps)), one fused kernel per variable.

Inference is one tf.function of the model with training=False (moving statistics, no
variable assigned), its input signature's batch None so it is traced once for every batch
size; tf2onnx converts that same function to ONNX.

Twins: python/dlrosetta/stacks/pytorch/trainer.py, python/dlrosetta/stacks/keras/trainer.py,
       r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from dlrosetta.model_spec import RESNET
from dlrosetta.stacks.train import Trainer, pick_accelerator
from dlrosetta.stacks.tensorflow import configure
from dlrosetta.stacks.tensorflow.lstm import LSTMClassifier
from dlrosetta.stacks.tensorflow.resnet import ResNet

ONNX_OPSET = 18  # the newest tf2onnx 1.17 converts to


class Momentum:
    def __init__(self, variables: list[tf.Variable], learning_rate: float, momentum: float):
        self.variables = variables
        self.accums = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.lr, self.momentum = learning_rate, momentum

    def apply(self, grads: list[tf.Tensor]) -> None:
        for v, a, g in zip(self.variables, self.accums, grads):
            tf.raw_ops.ResourceApplyMomentum(var=v.handle, accum=a.handle, lr=self.lr, grad=g,
                                             momentum=self.momentum, use_nesterov=False)


class Adam:
    def __init__(self, variables: list[tf.Variable], learning_rate: float, beta_1: float,
                 beta_2: float, epsilon: float):
        self.variables = variables
        self.ms = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.vs = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.step = tf.Variable(0.0, trainable=False)
        self.lr, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon

    def apply(self, grads: list[tf.Tensor]) -> None:
        t = self.step.assign_add(1.0)
        b1_power, b2_power = tf.pow(self.beta_1, t), tf.pow(self.beta_2, t)
        for var, m, v, g in zip(self.variables, self.ms, self.vs, grads):
            # The embedding's gradient is IndexedSlices; Adam's kernel takes it dense.
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
                                         beta2_power=b2_power, lr=self.lr, beta1=self.beta_1,
                                         beta2=self.beta_2, epsilon=self.epsilon,
                                         grad=tf.convert_to_tensor(g))


class TensorFlowTrainer(Trainer):
    framework = "tensorflow"
    profiler = "tensorflow"

    def __init__(self, spec, model, weights):
        super().__init__(spec, model, weights)
        self.accelerator = pick_accelerator(spec.device, configure(spec.threads), "tensorflow")
        tf.random.set_seed(spec.seed)
        if self.accelerator is None:
            tf.config.set_visible_devices([], "GPU")
        self.device = "/GPU:0" if self.accelerator else "/CPU:0"
        self.images = spec.model == RESNET
        with tf.device(self.device):
            self.net = (ResNet if self.images else LSTMClassifier)(spec.model_config, model)
            self.load_weights(weights)

            opt = spec.optimizer
            if opt["name"] == "sgd":
                self.optimizer = Momentum(self.net.trainable, opt["learning_rate"], opt["momentum"])
            elif opt["name"] == "adam":
                self.optimizer = Adam(self.net.trainable, opt["learning_rate"], opt["beta_1"], opt["beta_2"],
                                      opt["epsilon"])
            else:
                raise ValueError(f"unknown optimizer {opt['name']!r}")

        onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
        if self.accelerator:
            self.fused_kernel, notes = self.images, ("cuDNN convolutions, fused batch norm" if self.images else
                                                     "LSTM a tf.scan of the cell's matmuls")
        elif self.images:
            self.fused_kernel, notes = onednn, ("oneDNN convolutions and batch norm (FusedBatchNormV3)" if onednn
                                                else "Eigen convolutions (oneDNN off: TF_ENABLE_ONEDNN_OPTS=0)")
        else:
            self.fused_kernel, notes = False, "LSTM a tf.scan of the cell's matmuls (faster here than BlockLSTMV2)"
        self.kernel_notes = f"{notes}; tf.function train step, ResourceApply* optimizer kernels"

        # Inference: one tf.function traced once for any batch size (the signature's
        # None), in the shards' layout and dtype; ONNX export converts the same function.
        sample = self.sample_input(1)
        self.input_signature = [tf.TensorSpec([None, *sample.shape[1:]], tf.as_dtype(sample.dtype), name="input")]
        self._predict = tf.function(lambda x: {"logits": self.net(x, training=False)},
                                    input_signature=self.input_signature)

    def framework_version(self) -> str:
        return tf.__version__

    def device_name(self) -> str:
        return f"GPU:0 ({self.accelerator})" if self.accelerator else "cpu"

    def parameter_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.net.trainable))

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self.in_spec_order({name: v.numpy() for name, v in self.net.v.items()})

    def load_weights(self, weights) -> None:
        for name, v in self.net.v.items():
            v.assign(weights[name])

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        with tf.device(self.device):
            self.x_train, self.y_train = tf.constant(x), tf.constant(y)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def _step(self, idx: tf.Tensor) -> tf.Tensor:
        x, y = tf.gather(self.x_train, idx), tf.gather(self.y_train, idx)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, self.net(x, training=True)))
        self.optimizer.apply(tape.gradient(loss, self.net.trainable))
        return loss

    def train_epoch(self, batches: np.ndarray) -> float:
        total = tf.add_n([self._step(tf.constant(row)) for row in batches])
        return float(total.numpy()) / len(batches)

    def inference_input(self, x: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return tf.constant(x)

    def predict(self, inputs: tf.Tensor) -> np.ndarray:
        return self._predict(inputs)["logits"].numpy()

    def export_onnx(self, path: str) -> dict:
        import onnx
        import tf2onnx  # only exports need it

        model, _ = tf2onnx.convert.from_function(self._predict, input_signature=self.input_signature,
                                                 opset=ONNX_OPSET)
        for value in (*model.graph.input, *model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"  # tf2onnx calls it unk__<n>
        onnx.save(model, path)
        return {"exporter": f"tf2onnx {tf2onnx.__version__} (from_function; tensorflow {tf.__version__})",
                "opset": ONNX_OPSET}
