"""Train a small MLP on scikit-learn's handwritten digits with three descend optimizers.

Run with `make demo` (or `python examples/quickstart.py`). Every optimizer starts from the
same weights and sees the same mini-batches, so the losses are comparable.
"""

import torch
from sklearn.datasets import load_digits

import descend


def main() -> None:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    perm = torch.randperm(len(x))
    train, test = perm[:1400], perm[1400:]

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 10))

    optimizers = {
        "SGD (lr=0.1)": lambda p: descend.SGD(p, lr=0.1),
        "Momentum EMA (lr=0.1)": lambda p: descend.Momentum(p, lr=0.1, momentum=0.9),
        "Adam (lr=1e-3)": lambda p: descend.Adam(p, lr=1e-3),
    }
    print(f"{'optimizer':<24}{'train loss':>12}{'test acc':>10}")
    for name, make_opt in optimizers.items():
        model = make_model()
        opt = make_opt(model.parameters())
        gen = torch.Generator().manual_seed(1)
        for _epoch in range(10):
            for batch in train[torch.randperm(len(train), generator=gen)].split(64):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                loss.backward()
                opt.step()
        with torch.no_grad():
            train_loss = torch.nn.functional.cross_entropy(model(x[train]), y[train]).item()
            acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
        print(f"{name:<24}{train_loss:>12.4f}{acc:>10.1%}")


if __name__ == "__main__":
    main()
