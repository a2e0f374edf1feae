"""descend inside the training frameworks people use: PyTorch Lightning and the
transformers Trainer, next to torch.optim under the same setup. Slow (framework imports);
the frameworks come with the `integrations` extra, and the tests skip without them.
"""

from __future__ import annotations

import pytest
import torch

import descend
import descend.schedules as S

pytestmark = pytest.mark.slow


def _data(n=48):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen)
    return x, (x[:, :2].sum(1, keepdim=True) - 0.3)


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _close(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x.detach(), y.detach(), rtol=1e-5, atol=1e-6)


# -- PyTorch Lightning ---------------------------------------------------------------------


def _lightning_run(tmp_path, which, steps, ckpt_in=None, ckpt_out=None):
    L = pytest.importorskip("lightning.pytorch")

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            if which == "descend":
                opt = descend.AdamW(self.parameters(), lr=S.warmup_cosine(1e-2, 2, 12),
                                    weight_decay=0.1)
                return opt
            opt = torch.optim.AdamW(self.parameters(), lr=1e-2, weight_decay=0.1)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda t: S.warmup_cosine(1e-2, 2, 12)(t) / 1e-2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Module()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader, ckpt_path=ckpt_in)
    if ckpt_out is not None:
        trainer.save_checkpoint(ckpt_out)
    return list(module.parameters())


def test_lightning_trains_and_resumes_like_torch(tmp_path):
    """12 steps straight, and 6 + 6 through a Lightning checkpoint. (Lightning's resumed
    run is not the straight run, for torch.optim either; descend must resume as torch does.)"""
    _close(_lightning_run(tmp_path, "descend", 12), _lightning_run(tmp_path, "torch", 12))
    resumed = {}
    for which in ("descend", "torch"):
        ckpt = tmp_path / f"{which}.ckpt"
        _lightning_run(tmp_path, which, 6, ckpt_out=ckpt)
        resumed[which] = _lightning_run(tmp_path, which, 12, ckpt_in=str(ckpt))
    _close(resumed["descend"], resumed["torch"])


# -- transformers Trainer --------------------------------------------------------------------


def _transformers_run(tmp_path, which):
    transformers = pytest.importorskip("transformers")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = _data()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i]}

    model = Net()
    schedule = S.warmup_cosine(1e-2, 2, 12)
    if which == "descend":
        opt = descend.AdamW(model.parameters(), lr=schedule, weight_decay=0.1)
        sched = S.AttachedScheduler(opt)  # the optimizer runs its own schedule
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule(t) / 1e-2)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / which), max_steps=12, per_device_train_batch_size=8,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", seed=0,
        disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Data(),
                                   optimizers=(opt, sched))
    trainer.train()
    return list(model.parameters())


def test_transformers_trainer_trains_like_torch(tmp_path):
    _close(_transformers_run(tmp_path, "descend"), _transformers_run(tmp_path, "torch"))
