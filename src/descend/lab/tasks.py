"""Tasks: data + model + loss + metric, deterministic given a seed.

A task's data split is fixed; the seed decides the initial weights and the batch order.
Built-in tasks are looked up by name (`get_task`), and a user's own model and data become a
task with `Task.from_tensors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from . import data as datasets
from .data import Splits


@dataclass(eq=False)
class Task:
    """What to train.

    Attributes:
        name: registry name or a user's label.
        make_splits: builds the data (called once, lazily).
        make_model: builds a fresh model; the runner seeds torch before calling it.
        loss: ``loss(output, target) -> scalar``.
        classification: report accuracy (argmax of the output) when True.
        optimum: for convex problems with a known solution, the flat parameter vector the
            optimizers should approach; the records then carry the distance to it.
        epochs, batch_size: the task's default budget.
        description: one line for `--help` and reports.
        train_eval: evaluate the training loss on this many training examples (a fixed
            subset) instead of all of them, for tasks whose training set is large.
        flush_denormal: train with subnormal floats flushed to zero (see `_autoencoder`).
    """

    name: str
    make_splits: Callable[[], Splits]
    make_model: Callable[[], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    classification: bool = True
    optimum: Callable[[], Tensor] | None = None
    epochs: int = 20
    batch_size: int = 64
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    train_eval: int | None = None
    flush_denormal: bool = False

    @cached_property
    def splits(self) -> Splits:
        return self.make_splits()

    @classmethod
    def from_tensors(cls, name: str, model: Callable[[], nn.Module],
                     loss: Callable[[Tensor, Tensor], Tensor], x: Tensor | Iterable,
                     y: Tensor | None = None, *, x_test: Tensor | None = None,
                     y_test: Tensor | None = None, val_fraction: float = 0.1,
                     test_fraction: float = 0.2, classification: bool | None = None,
                     epochs: int = 20, batch_size: int = 64) -> Task:
        """A task from your own model factory, loss and data.

        `x`/`y` are tensors, or `x` is an iterable of ``(inputs, targets)`` batches (a
        DataLoader), which is read once into memory: the lab draws batches from in-memory
        tensors so that loader overhead does not hide the optimizer's cost. Without
        `x_test`, a test split of `test_fraction` is held out; a validation split of
        `val_fraction` is always carved from the training data.
        """
        x, y = _materialise(x, y, "x")
        if x_test is None:
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(4321))
            n_test = int(round(len(x) * test_fraction))
            x_test, y_test = x[perm[:n_test]], y[perm[:n_test]]
            x, y = x[perm[n_test:]], y[perm[n_test:]]
        else:
            x_test, y_test = _materialise(x_test, y_test, "x_test")
        if classification is None:
            classification = not y.is_floating_point()
        splits = datasets.carve_validation(x, y, x_test, y_test, val_fraction)
        return cls(name, lambda: splits, model, loss, classification, epochs=epochs,
                   batch_size=batch_size, description="user task")


def _materialise(x: Any, y: Any, name: str) -> tuple[Tensor, Tensor]:
    if isinstance(x, Tensor):
        if y is None or len(y) != len(x):
            raise ValueError(f"{name}: targets must be a tensor with one row per input")
        return x, y
    xs, ys = [], []
    for batch in x:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(f"{name}: a loader must yield (inputs, targets) pairs")
        xs.append(batch[0])
        ys.append(batch[1])
    if not xs:
        raise ValueError(f"{name}: the loader yielded no batches")
    return torch.cat(xs), torch.cat(ys)


# -- models --------------------------------------------------------------------------------


def mlp(*sizes: int) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class MNIST1DConvNet(nn.Module):
    """The MNIST-1D paper's CNN: three stride-2 convolutions of 25 channels, then linear."""

    def __init__(self, channels: int = 25, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(channels * 5, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.view(-1, 1, x.shape[-1])
        h = self.conv3(self.conv2(self.conv1(h).relu()).relu()).relu()
        return self.linear(h.flatten(1))


# -- the registry --------------------------------------------------------------------------

cross_entropy = nn.functional.cross_entropy
mse = nn.functional.mse_loss


def _linreg(**_: Any) -> Task:
    made: dict[str, Any] = {}

    def build() -> tuple[Splits, Tensor]:
        if not made:
            made["splits"], made["optimum"] = datasets.linear_regression()
        return made["splits"], made["optimum"]

    return Task("linreg", lambda: build()[0], lambda: nn.Linear(20, 1), mse,
                classification=False, optimum=lambda: build()[1], epochs=30, batch_size=32,
                description="linear regression, 20 ill-conditioned features, MSE; known optimum")


def _digits(hidden: tuple[int, ...], name: str, text: str) -> Callable[..., Task]:
    def make(**_: Any) -> Task:
        return Task(name, datasets.digits, lambda: mlp(64, *hidden, 10), cross_entropy,
                    epochs=20, batch_size=64, description=text)
    return make


def _mnist1d(name: str, model: Callable[[], nn.Module], text: str) -> Callable[..., Task]:
    def make(**_: Any) -> Task:
        # The paper trains 6000 steps at batch 100 on 4000 examples: 150 epochs.
        return Task(name, datasets.mnist1d, model, cross_entropy, epochs=150,
                    batch_size=100, description=text)
    return make


def _idx(dataset: str, hidden: int, name: str) -> Callable[..., Task]:
    def make(data_dir: str | None = None, **_: Any) -> Task:
        if data_dir is None:
            raise datasets.DataError(
                f"task {name!r} reads {dataset} IDX files: pass --data-dir DIR holding "
                + ", ".join(datasets.IDX_FILES[dataset]))
        return Task(name, lambda: datasets.idx_dataset(data_dir, dataset),
                    lambda: mlp(784, hidden, 10), cross_entropy, epochs=10, batch_size=64,
                    description=f"{dataset} from IDX files, MLP 784-{hidden}-10")
    return make


SIZES = ("test", "quick", "default", "large")


def _check_size(name: str, size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"task {name!r}: unknown size {size!r}; available: {', '.join(SIZES)}")
    return size


# The transformer's shape at each size: (context, width, layers, heads, share of the corpus).
# "default" trains in about two minutes on one core with the workload's budget; "large"
# is for machines with more time to spend.
GPT_SIZES = {"test": (32, 32, 2, 2, 1.0), "quick": (32, 48, 2, 4, 1.0),
             "default": (64, 64, 2, 4, 1.0), "large": (128, 128, 4, 4, 1.0)}


def _pydoc_gpt(size: str = "default", **_: Any) -> Task:
    from . import textlm

    context, width, layers, heads, fraction = GPT_SIZES[_check_size("pydoc-gpt", size)]
    cfg = textlm.GPTConfig(context=context, width=width, layers=layers, heads=heads)
    return Task("pydoc-gpt", lambda: textlm.text_splits(context, fraction),
                lambda: textlm.TinyGPT(cfg), textlm.byte_loss, classification=False,
                epochs=1, batch_size=32, train_eval=256,
                description=f"decoder-only transformer ({layers} layers, width {width}, "
                f"context {context}) on the bytes of Python's pydoc_data.topics; loss in "
                "nats per byte")


class Autoencoder(nn.Module):
    """Hinton & Salakhutdinov's (2006) deep autoencoder, scaled to 8x8 digits: logistic
    units around a linear 16-unit code, linear output."""

    def __init__(self, sizes: tuple[int, ...] = (64, 256, 128, 64, 16, 64, 128, 256, 64)
                 ) -> None:
        super().__init__()
        code = sizes.index(min(sizes))
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i + 1 not in (code, len(sizes) - 1):
                layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _autoencoder(**_: Any) -> Task:
    def splits() -> Splits:
        d = datasets.digits()
        return Splits(d.x_train, d.x_train, d.x_val, d.x_val, d.x_test, d.x_test)

    # Saturated logistic units produce subnormal floats, which make a CPU step several
    # times slower on some seeds and lrs: that would be timed as the optimizer's cost.
    return Task("digits-autoencoder", splits, Autoencoder, mse, classification=False,
                epochs=100, batch_size=64, flush_denormal=True,
                description="deep autoencoder 64-256-128-64-16 (logistic units) on digits, "
                "reconstruction MSE; SGD stalls on its plateau, adaptive methods do not")


TASKS: dict[str, Callable[..., Task]] = {
    "digits-mlp": _digits((64,), "digits-mlp",
                          "scikit-learn digits (8x8, real, offline), MLP 64-64-10 [default]"),
    "digits-logreg": _digits((), "digits-logreg",
                             "scikit-learn digits, multinomial logistic regression"),
    "linreg": _linreg,
    "mnist1d-mlp": _mnist1d("mnist1d-mlp", lambda: mlp(40, 100, 100, 10),
                            "MNIST-1D (generated offline), MLP 40-100-100-10"),
    "mnist1d-cnn": _mnist1d("mnist1d-cnn", MNIST1DConvNet,
                            "MNIST-1D, the paper's 3-layer CNN"),
    "pydoc-gpt": _pydoc_gpt,
    "digits-autoencoder": _autoencoder,
    "mnist-mlp128": _idx("mnist", 128, "mnist-mlp128"),
    "mnist-mlp512": _idx("mnist", 512, "mnist-mlp512"),
    "fashion-mlp128": _idx("fashion-mnist", 128, "fashion-mlp128"),
    "fashion-mlp512": _idx("fashion-mnist", 512, "fashion-mlp512"),
}

DEFAULT_TASK = "digits-mlp"


def get_task(name: str, **options: Any) -> Task:
    try:
        factory = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(TASKS)}") from None
    return factory(**options)
