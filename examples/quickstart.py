"""Train a small MLP on scikit-learn's handwritten digits with three descend optimizers.

Run with `python examples/quickstart.py`. Every optimizer starts from the same weights and
sees the same mini-batches, so the losses are comparable. It prints what it is doing as it
goes: importing torch alone takes seconds on a busy machine.
"""

import sys
import time

print("importing torch and descend...", flush=True)
start = time.perf_counter()

import torch  # noqa: E402

import descend  # noqa: E402
from descend.lab.data import digits  # noqa: E402  (scikit-learn's digits, read directly)

EPOCHS = 10


def progress(text: str) -> None:
    """One line, rewritten in place on a terminal; kept whole in a log."""
    if sys.stdout.isatty():
        print(f"\r{text:<60}", end="", flush=True)


def main() -> None:
    data = digits()
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    x_test, y_test = data.x_test, data.y_test
    print(f"ready after {time.perf_counter() - start:.1f} s: {len(x)} training and "
          f"{len(x_test)} test images", flush=True)

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 10))

    optimizers = {
        "SGD (lr=0.1)": lambda p: descend.SGD(p, lr=0.1),
        "Momentum EMA (lr=0.1)": lambda p: descend.Momentum(p, lr=0.1, momentum=0.9),
        "Adam (lr=1e-3)": lambda p: descend.Adam(p, lr=1e-3),
    }
    results = []
    for i, (name, make_opt) in enumerate(optimizers.items(), start=1):
        model = make_model()
        opt = make_opt(model.parameters())
        gen = torch.Generator().manual_seed(1)
        began = time.perf_counter()
        for epoch in range(EPOCHS):
            progress(f"[{i}/{len(optimizers)}] {name}: epoch {epoch + 1}/{EPOCHS}")
            for batch in torch.randperm(len(x), generator=gen).split(64):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                loss.backward()
                opt.step()
        with torch.no_grad():
            train_loss = torch.nn.functional.cross_entropy(model(x), y).item()
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        results.append((name, train_loss, acc))
        progress("")
        print(f"\r[{i}/{len(optimizers)}] {name}: {EPOCHS} epochs in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
    print(f"\n{'optimizer':<24}{'train loss':>12}{'test acc':>10}")
    for name, train_loss, acc in results:
        print(f"{name:<24}{train_loss:>12.4f}{acc:>10.1%}")


if __name__ == "__main__":
    main()
