"""The JAX stack's Trainer: Flax linen models, optax optimisers, one jax.jit train step.

Linen, not NNX: Flax 0.12.8's own examples of these two models are linen (examples/imagenet,
a ResNet with TrainState and a mutable `batch_stats` collection; examples/sst2, an LSTM text
classifier); NNX appears in the MNIST and Gemma examples. Linen's step is also a pure
function of pytrees, which jax.jit compiles and donates as it is, whereas nnx.jit splits
and merges the module graph in Python on every call.

The step is what Flax's examples write: TrainState (params, optax state, batch_stats),
jax.value_and_grad of the loss with `mutable=["batch_stats"]`, state.apply_gradients. It is
jitted with the state and the running loss total donated (donate_argnums), so XLA updates
parameters, moments and statistics in place instead of allocating new buffers each step
(measured on 2 CPU cores: within noise for the ResNet, 5-10% more CPU time for the LSTM;
kept, as JAX steps are written, since on an accelerator it saves a copy of every
parameter and moment).
The training data sit on the device once; the step takes an epoch's index row and gathers
the batch inside the compiled program. Calls are asynchronous: Python queues step k+1
while XLA runs step k, and the epoch synchronises once, on its loss total.

Inference is a second jitted function, the model applied with train=False
(use_running_average: the moving statistics, read, never written): a pure function of the
state, so evaluation cannot change training. jax2onnx converts it for the ResNet.

Twins: python/dlrosetta/stacks/pytorch/trainer.py, python/dlrosetta/stacks/tensorflow/trainer.py,
       python/dlrosetta/stacks/keras/trainer.py, r/stacks/r-keras/R/train.R,
       julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import math
from importlib.metadata import version
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from dlrosetta.model_spec import RESNET
from dlrosetta.stacks.train import ExportUnsupported, Trainer, pick_accelerator
from dlrosetta.stacks.jax import configure
from dlrosetta.stacks.jax import lstm, resnet

ONNX_OPSET = 23  # jax2onnx's default


class TrainState(train_state.TrainState):
    """Flax's TrainState plus the BN moving statistics (empty for the LSTM), as in
    Flax's ImageNet example."""
    batch_stats: Any = struct.field(default_factory=dict)


def adam(opt: Mapping) -> optax.GradientTransformation:
    """Adam in the documented form (docs/models.md), w -= lr*sqrt(1-b2^t)/(1-b1^t) *
    m/(sqrt(v) + eps). optax.adam adds eps after the bias correction, to sqrt(v/(1-b2^t)),
    as PyTorch does; passing eps_t = eps/sqrt(1-b2^t) makes the updates identical. eps_t
    is an optax schedule of the step count (inject_hyperparams calls it with the count
    before the update, t-1); 1-b2^t is -expm1(t*log b2), exact in float32 where 1-b2**t
    would cancel. eps_root cannot express this: inside the square root it is another form."""
    b2, eps = opt["beta_2"], opt["epsilon"]
    log_b2 = math.log(b2)

    def eps_t(count):
        return eps / jnp.sqrt(-jnp.expm1((count + 1) * log_b2))

    return optax.inject_hyperparams(optax.adam)(learning_rate=opt["learning_rate"], b1=opt["beta_1"],
                                                b2=b2, eps=eps_t)


def optimizer(opt: Mapping) -> optax.GradientTransformation:
    if opt["name"] == "sgd":
        # Heavy ball, v = m*v + g; w -= lr*v: optax's trace form, as documented.
        return optax.sgd(opt["learning_rate"], momentum=opt["momentum"], nesterov=False)
    if opt["name"] == "adam":
        return adam(opt)
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def check_tree(got: Mapping, expected: Mapping, what: str) -> None:
    """The converted canonical tree has exactly the model's structure, shapes and dtypes."""
    got_shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), got)
    want_shapes = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), expected)
    if got_shapes != want_shapes:
        raise ValueError(f"canonical weights do not fit the Flax {what} tree:\n"
                         f"converted {got_shapes}\nmodel     {want_shapes}")


class JaxTrainer(Trainer):
    framework = "jax"
    profiler = "jax"

    def __init__(self, spec, model, weights):
        super().__init__(spec, model, weights)
        self.accelerator = pick_accelerator(spec.device, configure(spec.threads), "jax")
        self.device = jax.devices()[0] if self.accelerator else jax.devices("cpu")[0]
        self.images = spec.model == RESNET
        cfg = spec.model_config
        self.net = resnet.build_resnet(cfg) if self.images else lstm.build_lstm(cfg)
        self.to_variables, self.from_variables = ((resnet.resnet_variables, resnet.resnet_canonical) if self.images
                                                  else (lstm.lstm_variables, lstm.lstm_canonical))
        # The model's own tree, shapes only (nothing drawn): converted weights must match it.
        self.tree = jax.eval_shape(lambda x: self.net.init(jax.random.key(spec.seed), x, train=False),
                                   self.sample_input(1))
        # Zeros until load_weights; the optimiser's initial state does not depend on them.
        zeros = jax.device_put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(self.tree)), self.device)
        self.state = TrainState.create(apply_fn=self.net.apply, params=zeros["params"],
                                       batch_stats=zeros.get("batch_stats", {}), tx=optimizer(spec.optimizer))
        self.load_weights(weights)
        self._train_step = jax.jit(self._step, donate_argnums=(0, 1))
        self._predict = jax.jit(lambda params, batch_stats, x: self._logits(params, batch_stats, x, train=False)[0])

        # On CPU XLA compiles the whole step itself (convolutions and dots become YNNPACK
        # fusions, the LSTM a while loop), as keras-jax reports; on GPU convolutions are cuDNN's.
        self.fused_kernel = bool(self.accelerator) and self.images
        step = "train step jax.jit with donated state, batch gathered inside it"
        if self.accelerator:
            self.kernel_notes = (f"XLA GPU: cuDNN convolutions, fused elementwise; {step}" if self.images else
                                 f"XLA GPU: nn.RNN(OptimizedLSTMCell), a lax.scan of cuBLAS matmuls; {step}")
        else:
            # The ResNet's gap to the fastest stacks: the report's profile shows where it goes.
            self.kernel_notes = (f"XLA:CPU convolutions (NHWC; Eigen, YNNPACK fusions), each weight gradient "
                                 f"computed on transposed copies of activations and output gradients "
                                 f"(transpose_copy_fusion); batch norm and ReLU in fused elementwise loops; "
                                 f"{step}" if self.images else
                                 f"nn.RNN(OptimizedLSTMCell): a lax.scan compiled by XLA:CPU into a while loop "
                                 f"of two matmuls per step; {step}")

    def framework_version(self) -> str:
        import flax

        return f"{jax.__version__} (flax {flax.__version__}, optax {optax.__version__})"

    def device_name(self) -> str:
        return f"{self.device.platform}:0 ({self.accelerator})" if self.accelerator else "cpu"

    def parameter_count(self) -> int:
        return int(sum(leaf.size for leaf in jax.tree.leaves(self.state.params)))

    def canonical_weights(self) -> dict[str, np.ndarray]:
        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        return self.in_spec_order(self.from_variables(jax.device_get(variables), self.model.names()))

    def load_weights(self, weights) -> None:
        variables = self.to_variables(weights)
        check_tree(variables, dict(self.tree), self.spec.model)
        variables = jax.device_put(variables, self.device)
        self.state = self.state.replace(params=variables["params"], batch_stats=variables.get("batch_stats", {}))

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_train, self.y_train = self.inference_input(x), jax.device_put(np.asarray(y, np.int32), self.device)

    # --- compiled steps

    def _logits(self, params, batch_stats, x, train: bool):
        """Logits and the new batch statistics (the old ones outside training)."""
        variables = {"params": params, "batch_stats": batch_stats} if self.images else {"params": params}
        if train and self.images:
            logits, updates = self.net.apply(variables, x, train=True, mutable=["batch_stats"])
            return logits, updates["batch_stats"]
        return self.net.apply(variables, x, train=train), batch_stats

    def _step(self, state: TrainState, total, x_all, y_all, idx):
        x, y = x_all[idx], y_all[idx]

        def loss_fn(params):
            logits, batch_stats = self._logits(params, state.batch_stats, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads, batch_stats=batch_stats), total + loss

    # --- the Trainer interface

    def train_epoch(self, batches: np.ndarray) -> float:
        rows = np.asarray(batches, np.int32)
        total = jax.device_put(np.zeros((), np.float32), self.device)
        for row in rows:
            self.state, total = self._train_step(self.state, total, self.x_train, self.y_train, row)
        return float(total) / len(rows)  # float() waits for the last step

    def inference_input(self, x: np.ndarray) -> jax.Array:
        return jax.device_put(np.asarray(x, np.float32 if self.images else np.int32), self.device)

    def predict(self, inputs: jax.Array) -> np.ndarray:
        # A pure function of the state (use_running_average): nothing to restore.
        return np.asarray(self._predict(self.state.params, self.state.batch_stats, inputs))

    def export_onnx(self, path: str) -> dict:
        import jax2onnx  # only exports need it
        import onnx

        exporter = f"jax2onnx {version('jax2onnx')}"
        if not self.images:
            # Measured with jax2onnx 0.17.1, flax 0.12.8: tracing nn.RNN fails inside flax's
            # axes_scan, whatever the batch (symbolic or fixed), also with an explicit carry.
            raise ExportUnsupported(f"{exporter} cannot convert flax.linen.RNN (nn.RNN's scan: flax.core.axes_scan "
                                    f"gets a traced shape, 'Shapes must be 1D sequences of concrete values')")
        params, batch_stats = self.state.params, self.state.batch_stats
        sample = self.sample_input(1)
        # The batch a symbolic dimension: the exported graph takes any batch size.
        shape = jax.export.symbolic_shape(f"batch, {', '.join(map(str, sample.shape[1:]))}")
        model = jax2onnx.to_onnx(lambda x: self._logits(params, batch_stats, x, train=False)[0],
                                 [jax.ShapeDtypeStruct(shape, sample.dtype)], model_name=self.spec.model,
                                 opset=ONNX_OPSET, input_names=["input"], output_names=["logits"])
        # jax2onnx turns the convolutions NCHW but keeps their NHWC shapes in value_info,
        # which shape inference then rejects; those annotations are optional: drop them.
        del model.graph.value_info[:]
        onnx.save(model, path)
        return {"exporter": f"{exporter} (jax {jax.__version__})", "opset": ONNX_OPSET}
