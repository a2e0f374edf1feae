"""Datasets the lab can build offline: generated, bundled with a package, or read from disk."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import LabError


@dataclass(frozen=True)
class Splits:
    """Train / validation / test tensors. Validation is carved from the training data."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def carve_validation(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor,
                     val_fraction: float, seed: int = 0) -> Splits:
    """Split a validation set off the training data with a fixed permutation, so that every
    run and every seed sees the same split (seeds vary the model and the batch order)."""
    n_val = int(round(len(x) * val_fraction))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return Splits(x[train], y[train], x[val], y[val], x_test, y_test)


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$DESCEND_CACHE`` or ``~/.cache/descend``."""
    return Path(os.environ.get("DESCEND_CACHE", Path.home() / ".cache" / "descend"))


# -- scikit-learn's handwritten digits (bundled, 1797 images of 8x8) -------------------------


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits.csv.gz, read the way `load_digits` reads it but
    without importing scikit-learn, which takes longer than the whole default run's
    training on one core; `load_digits` itself when the file is not where it is expected."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def digits(val_fraction: float = 0.15, test_fraction: float = 0.2) -> Splits:
    images, labels = _digits_arrays()
    x = torch.tensor(images, dtype=torch.float32) / 16.0
    y = torch.tensor(labels, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    n_test = int(round(len(x) * test_fraction))
    test, rest = perm[:n_test], perm[n_test:]
    return carve_validation(x[rest], y[rest], x[test], y[test], val_fraction)


# -- MNIST-1D (Greydanus, 2020), generated offline by the mnist1d package --------------------


def mnist1d(val_fraction: float = 0.1) -> Splits:
    """The standard MNIST-1D (4000 train / 1000 test, the package's default seed 42),
    generated once and cached as .npz."""
    path = cache_dir() / "mnist1d-default.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        state = np.random.get_state()  # make_dataset reseeds numpy's global generator
        data = make_dataset(get_dataset_args())
        np.random.set_state(state)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
        os.replace(tmp, path)
    with np.load(path) as d:
        x, y = torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"], dtype=torch.long)
        xt = torch.tensor(d["x_test"], dtype=torch.float32)
        yt = torch.tensor(d["y_test"], dtype=torch.long)
    return carve_validation(x, y, xt, yt, val_fraction)


# -- MNIST and Fashion-MNIST from IDX files -----------------------------------------------

# md5 sums published with the datasets (LeCun et al.; Xiao et al. for Fashion-MNIST), the
# values torchvision checks too. A SHA256SUMS file beside the data takes precedence.
IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


class DataError(LabError):
    """A dataset file is missing, corrupt or not what it claims to be."""


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_checksum(directory: Path, name: str, dataset: str) -> tuple[str, str]:
    sums = directory / "SHA256SUMS"
    if sums.exists():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == name:
                return "sha256", parts[0]
    return "md5", IDX_FILES[dataset][name]


def verified_file(directory: str | Path, name: str, dataset: str = "mnist") -> Path:
    """The path of `name` in `directory`, after checking it exists and its checksum."""
    directory = Path(directory)
    path = directory / name
    algorithm, expected = _expected_checksum(directory, name, dataset)
    if not directory.is_dir():
        raise DataError(f"data directory {str(directory)!r} does not exist; it should hold "
                        f"{name} ({algorithm} {expected})")
    if not path.exists():
        raise DataError(f"missing {name} in {directory} (expected {algorithm} {expected})")
    actual = _digest(path, algorithm)
    if actual != expected:
        raise DataError(f"{path} is corrupt or not the published file: its {algorithm} is "
                        f"{actual}, expected {expected}")
    return path


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): magic 0x0000, a type byte, a rank byte, then the
    dimensions as big-endian int32, then the data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    rank = raw[3]
    dims = struct.unpack(f">{rank}i", raw[4:4 + 4 * rank])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * rank:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(f"{path} is truncated: header says {dims}, file holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_idx_split(directory: str | Path, split: str, dataset: str = "mnist"
                   ) -> tuple[Tensor, Tensor]:
    """Images (float32 in [0, 1], flattened to 784) and labels of the train or t10k split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(verified_file(directory, f"{prefix}-images-idx3-ubyte.gz", dataset))
    labels = read_idx(verified_file(directory, f"{prefix}-labels-idx1-ubyte.gz", dataset))
    if len(images) != len(labels):
        raise DataError(f"{directory}: {len(images)} images but {len(labels)} labels")
    x = torch.tensor(images.reshape(len(images), -1), dtype=torch.float32) / 255.0
    return x, torch.tensor(labels, dtype=torch.long)


def idx_dataset(directory: str | Path, dataset: str = "mnist",
                val_fraction: float = 1 / 12) -> Splits:
    """MNIST or Fashion-MNIST from the four IDX files in `directory` (val: 5,000 of 60,000)."""
    x, y = load_idx_split(directory, "train", dataset)
    xt, yt = load_idx_split(directory, "test", dataset)
    return carve_validation(x, y, xt, yt, val_fraction)


# -- synthetic linear regression with a known optimum -------------------------------------


def linear_regression(n: int = 1000, d: int = 20, noise: float = 0.1,
                      val_fraction: float = 0.2) -> tuple[Splits, Tensor]:
    """y = X w* + b* + noise, with correlated features so that the problem is
    ill-conditioned. Returns the splits and the least-squares optimum [w; b] of the
    training set, the point every optimizer should approach."""
    gen = torch.Generator().manual_seed(7)
    scales = torch.logspace(0, 1, d)  # condition number of X^T X about 100
    x = torch.randn(n + n // 4, d, generator=gen) * scales
    w_true = torch.randn(d, generator=gen) / scales
    y = x @ w_true + 0.5 + noise * torch.randn(len(x), generator=gen)
    splits = carve_validation(x[:n], y[:n, None], x[n:], y[n:, None], val_fraction)
    design = torch.cat([splits.x_train, torch.ones(len(splits.x_train), 1)], dim=1).double()
    optimum = torch.linalg.lstsq(design, splits.y_train.double()).solution.squeeze(1).float()
    return splits, optimum
