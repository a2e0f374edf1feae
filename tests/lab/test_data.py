"""Datasets: the IDX reader on the real MNIST test set, checksums, generated tasks."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from descend.lab import data
from descend.lab.tasks import TASKS, get_task

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")


@needs_mnist
def test_idx_reader_on_the_real_mnist_test_set():
    x, y = data.load_idx_split(MNIST, "test")
    assert x.shape == (10000, 784) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                          1009]


@needs_mnist
def test_corrupt_and_missing_files_name_the_file_and_checksum(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, tmp_path / name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[-3] ^= 0xFF
    labels.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz is corrupt.*expected "
                       "ec29112dd5afa0611ce80d1b7f02629c"):
        data.load_idx_split(tmp_path, "test")
    with pytest.raises(data.DataError, match="missing train-images-idx3-ubyte.gz .*md5 "
                       "f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        data.idx_dataset(tmp_path)
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_idx_split(tmp_path / "nowhere", "test")


def test_idx_format_errors(tmp_path):
    good = tmp_path / "ok.gz"
    with gzip.open(good, "wb") as f:
        f.write(bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
                + bytes(range(6)))
    assert data.read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big") + bytes(3))
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(short)
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    with pytest.raises(data.DataError, match="bad magic"):
        data.read_idx(junk)


def test_idx_tasks_need_a_data_dir():
    with pytest.raises(data.DataError, match="pass --data-dir"):
        get_task("mnist-mlp128")


def test_unknown_task_lists_the_registry():
    with pytest.raises(ValueError, match="unknown task 'cifar'; available: " + ", ".join(TASKS)):
        get_task("cifar")


@pytest.mark.slow
def test_mnist1d_is_generated_offline_with_the_standard_split(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE", str(tmp_path))
    splits = get_task("mnist1d-mlp").splits
    assert splits.x_train.shape[1] == 40
    assert len(splits.x_train) + len(splits.x_val) == 4000 and len(splits.x_test) == 1000
    assert (tmp_path / "mnist1d-default.npz").exists()
    cnn = get_task("mnist1d-cnn")
    assert cnn.make_model()(splits.x_test[:7]).shape == (7, 10)
