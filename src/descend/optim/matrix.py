"""Optimizers whose maths works on whole matrices: Adafactor, Muon (and its AdamW companion
for the parameters that are not hidden matrices) and SOAP.

Their rules reduce over each parameter tensor (norms, factored moments, Newton-Schulz,
eigenbases), so they run one tensor at a time on every backend. Their state is not all
parameter-shaped: Adafactor keeps row and column factors, SOAP Kronecker factors and their
eigenbases; it is saved, resumed and cast with the parameters like any other state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn
from typing_extensions import Unpack

from .. import recipes
from ..rules.base import Rule
from .base import ParamsT, RuleOptimizer
from .checks import at_least_one, eps_pair
from .classes import Options

# torch.optim.Muon's defaults (Keller Jordan's coefficients).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
MUON_EPS = 1e-7


def _refuse_complex(owner: str, where: str, p: Tensor) -> None:
    if p.is_complex():
        raise TypeError(f"{owner}: {where} is complex; {owner} optimizes real parameters "
                        "only (as torch and the reference implementations)")


class Adafactor(RuleOptimizer):
    r"""Adafactor (Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear
    Memory Cost"), identical to `torch.optim.Adafactor`::

        beta2_t = 1 - t^beta2_decay
        rho_t = min(lr, 1 / sqrt(t)),   alpha_t = max(eps2, RMS(theta_{t-1})) rho_t
        R_t = beta2_t R + (1 - beta2_t) mean_cols(G^2),  C_t likewise over rows  (matrices)
        V_t = R_t C_t / max(mean(R_t), eps1)       (vectors: V_t = beta2_t V + (1 - beta2_t) G^2)
        U_t = G / max(sqrt(V_t), eps1),   U_t <- U_t / max(1, RMS(U_t) / d)
        theta_t = theta_{t-1} - lr lambda theta_{t-1} - alpha_t U_t

    Tensors of more than two dimensions are factored over their last two (the others are
    batch dimensions), as in torch. ``eps = (eps1, eps2)``; eps1 = None means the machine
    epsilon of the parameter's dtype. As in torch and unlike the paper, ``lr`` caps the
    relative step (the paper's 0.01) and scales the decoupled weight decay; see
    `descend.rules.factored.scale_by_adafactor` for the other differences from the paper.
    Memory: O(m + n) per (m, n) matrix. Complex parameters are refused (as torch). State:
    ``row_var`` and ``col_var`` (matrices) or ``variance`` (vectors and scalars), ``step``.
    """

    # Adafactor's `d` is the update-clipping threshold (Prodigy carries a `d` of its own)
    checks = {"eps": eps_pair, "d": at_least_one}

    def __init__(self, params: ParamsT, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, beta2_decay=beta2_decay,
                         eps=tuple(eps) if isinstance(eps, list) else eps, d=d,
                         weight_decay=weight_decay, **options)

    def check_param(self, group: dict[str, Any], where: str, p: Tensor) -> None:
        _refuse_complex(type(self).__name__, where, p)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.adafactor(weight_decay=group["weight_decay"] != 0)


_MUON_HELP = ("give embeddings, the output head, biases and norms to AdamW: "
              "descend.MuonAdamW(model.named_parameters(), ...) routes each parameter "
              "(descend.muon_param_groups builds the groups)")


class Muon(RuleOptimizer):
    r"""Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural
    networks"), identical to `torch.optim.Muon`::

        B_t = mu B_{t-1} + (1 - mu) G_t
        M_t = (1 - mu) G_t + mu B_t  (nesterov, default)  or  B_t
        O_t = NS_k(M_t)                  quintic Newton-Schulz: approximately U V^T of M_t
        theta_t = theta_{t-1} - lr lambda theta_{t-1} - lr s(A, B) O_t

    s(A, B) = sqrt(max(1, A / B)) for an A x B matrix ("original", Keller Jordan's), or
    0.2 sqrt(max(A, B)) with ``adjust_lr_fn="match_rms_adamw"`` (Moonshot's "Muon is
    Scalable for LLM Training": the update then has AdamW's RMS, so AdamW's lr and weight
    decay carry over). Newton-Schulz runs in bfloat16 by default, as torch does, with
    torch's operations (so the results equal torch's); ``ns_dtype="float32"`` (or
    "float64") runs it in full precision: the orthogonalization is then exact to that
    precision instead of to bfloat16's 8 bits, at several times the cost on CPUs without
    fast bfloat16. (The iteration's own error, singular values in about [0.7, 1.2], is a
    property of the coefficients and remains.) torch's docstring writes the buffer as
    B_t = mu B_{t-1} + G_t; its code (and this class) keeps the average above. One
    difference from torch: for bfloat16 parameters with ``nesterov=False``, torch's
    ``grad.bfloat16()`` returns the momentum buffer itself, which its Newton-Schulz then
    divides by its norm in place, so torch's buffer stops being the average; descend's
    iteration works on a copy.

    Muon is for the 2-D weight matrices of hidden layers: any other parameter is refused,
    naming it. For a whole model use `MuonAdamW`, which sends embeddings, the output head,
    biases and norms to AdamW. Complex parameters are refused (as torch). ``maximize``
    (not in torch's Muon) negates the gradient. State: ``momentum_buffer``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = MUON_EPS, ns_steps: int = 5, adjust_lr_fn: str | None = None,
                 *, ns_dtype: str = "bfloat16", **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                         nesterov=nesterov, ns_coefficients=tuple(ns_coefficients), eps=eps,
                         ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype,
                         **options)

    def check_param(self, group: dict[str, Any], where: str, p: Tensor) -> None:
        owner = type(self).__name__
        _refuse_complex(owner, where, p)
        if p.dim() != 2:
            raise ValueError(f"{owner}: {where} has shape {tuple(p.shape)}; Muon optimizes "
                             f"2-D matrices only; {_MUON_HELP}")

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.muon(nesterov=group["nesterov"], weight_decay=group["weight_decay"] != 0)


# -- Muon for hidden matrices, AdamW for the rest ----------------------------------------

EMBEDDING_NAMES = ("wte", "wpe")
HEAD_NAMES = ("lm_head", "head", "output", "classifier", "fc", "score")


def is_hidden_matrix(name: str, p: Tensor) -> bool:
    """The default routing of `muon_param_groups` and `MuonAdamW`: True (Muon) for a 2-D
    parameter that is neither an embedding nor the output head, judged by its name.

    - not 2-D (biases, norms' gains, convolution kernels, scalars): AdamW;
    - an embedding: a name component containing "embed" (``embed_tokens``,
      ``tok_embeddings``, ``embeddings.word_embeddings``) or named ``wte`` / ``wpe``;
    - the output head: a top-level module named ``lm_head``, ``head``, ``output``,
      ``classifier``, ``fc`` or ``score`` (GPT-2, Llama, timm, torchvision), or ``lm_head``
      anywhere. A module named ``output`` deeper in the model (BERT's
      ``layer.0.output.dense``) is a hidden layer.
    """
    if p.dim() != 2:
        return False
    parts = name.lower().split(".")
    if any("embed" in part or part in EMBEDDING_NAMES for part in parts):
        return False
    return not (len(parts) > 1 and parts[0] in HEAD_NAMES) and "lm_head" not in parts


Route = Callable[[str, Tensor], bool]


def _named(params: nn.Module | Iterable[Any]) -> tuple[list[tuple[str, Tensor]], set[int]]:
    """(name, parameter) pairs, and the ids of parameters that nn.Embedding layers own."""
    if isinstance(params, nn.Module):
        owned = {id(p) for m in params.modules()
                 if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
                 for p in m.parameters(recurse=False)}
        return list(params.named_parameters()), owned
    named = list(params)
    for item in named:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor)):
            raise TypeError(
                "muon_param_groups needs a model or its named_parameters() (the names tell "
                "an embedding or a head from a hidden matrix), got "
                f"{type(item).__name__}; or build param groups with 'use_muon' yourself")
    return named, set()


def muon_param_groups(params: nn.Module | Iterable[tuple[str, Tensor]], *,
                      route: Route | None = None, muon: dict[str, Any] | None = None,
                      adamw: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Split a model's parameters into a Muon group and an AdamW group for `MuonAdamW`.

    `params` is a model (`nn.Module`; parameters of its ``nn.Embedding`` layers always go to
    AdamW) or its ``named_parameters()``. ``route(name, p) -> bool`` says which go to Muon
    (default `is_hidden_matrix`). `muon` and `adamw` are extra values for each group (an lr,
    a weight decay). Groups keep the parameters' names; an empty group is left out::

        groups = descend.muon_param_groups(model, adamw={"lr": 3e-4})
        opt = descend.MuonAdamW(groups, lr=0.02)
    """
    named, embeddings = _named(params)
    route = route or is_hidden_matrix
    hidden, other = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        (hidden if id(p) not in embeddings and route(name, p) else other).append((name, p))
    groups = []
    if hidden:
        groups.append({"params": hidden, **(muon or {}), "use_muon": True})
    if other:
        groups.append({"params": other, **(adamw or {}), "use_muon": False})
    return groups


class MuonAdamW(RuleOptimizer):
    r"""Muon for the hidden matrices, AdamW for embeddings, the head, biases and norms: the
    way modded-nanogpt and Moonshot train with Muon, as one optimizer::

        opt = descend.MuonAdamW(model.named_parameters(), lr=0.02, weight_decay=0.0,
                                adamw_lr=3e-4, adamw_betas=(0.9, 0.95))
        for x, y in loader:
            opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

    `params` is a model, its ``named_parameters()``, or param groups. A model or named
    parameters are split by `muon_param_groups` (override the routing with
    ``route=lambda name, p: ...``); a param group with ``"use_muon": True`` or ``False``
    is taken as it is, and one without the key is split like named parameters. Each
    group keeps ``use_muon``, and the optimizer runs `Muon`'s recipe on Muon groups and
    `AdamW`'s on the others (the recipe is chosen per group).

    The Muon hyperparameters (first, with `Muon`'s names and torch's defaults) are the
    defaults of Muon groups; ``adamw_lr``, ``adamw_betas``, ``adamw_eps`` and
    ``adamw_weight_decay`` (torch.optim.AdamW's defaults) those of AdamW groups, where they
    become the group's ``lr``, ``betas``, ``eps`` and ``weight_decay``; a value given in a
    group wins. Schedulers see every group's ``lr``: a schedule that multiplies the lr
    (warmup, cosine) keeps the two lrs in proportion. Every Muon group parameter must be
    2-D: one that is not is refused, naming it. State: Muon's ``momentum_buffer`` or
    AdamW's ``exp_avg`` and ``exp_avg_sq``, and ``step``.
    """

    def __init__(self, params: nn.Module | ParamsT, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = MUON_EPS, ns_steps: int = 5, adjust_lr_fn: str | None = None,
                 *, ns_dtype: str = "bfloat16", adamw_lr: float = 1e-3,
                 adamw_betas: tuple[float, float] = (0.9, 0.999), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 1e-2, route: Route | None = None,
                 **options: Unpack[Options]) -> None:
        self._route = route
        self._adamw = {"lr": adamw_lr, "eps": adamw_eps, "weight_decay": adamw_weight_decay}
        if isinstance(params, nn.Module):
            params = muon_param_groups(params, route=route)
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                         nesterov=nesterov, ns_coefficients=tuple(ns_coefficients), eps=eps,
                         ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype,
                         betas=tuple(adamw_betas), **options)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "use_muon" not in param_group:
            params = param_group["params"]
            params = [params] if isinstance(params, Tensor) else list(params)
            extra = {k: v for k, v in param_group.items() if k != "params"}
            groups = muon_param_groups(params, route=self._route, muon=extra, adamw=extra)
            if not groups:
                raise ValueError(f"{type(self).__name__}: a param group has no parameter "
                                 "that requires a gradient")
            for group in groups:
                self.add_param_group(group)
            return
        if not param_group["use_muon"]:
            param_group = {**self._adamw, **param_group}
        super().add_param_group(param_group)

    def check_param(self, group: dict[str, Any], where: str, p: Tensor) -> None:
        if group["use_muon"]:
            Muon.check_param(self, group, where, p)  # type: ignore[arg-type]

    def recipe(self, group: dict[str, Any]) -> Rule:
        if group["use_muon"]:
            return recipes.muon(nesterov=group["nesterov"],
                                weight_decay=group["weight_decay"] != 0)
        return recipes.adam(weight_decay=group["weight_decay"] != 0, decoupled=True)


class SOAP(RuleOptimizer):
    r"""SOAP (Vyas et al., 2024, "SOAP: Improving and Stabilizing Shampoo using Adam",
    Algorithm 3): Adam run in the eigenbasis of Shampoo's preconditioner, which is
    refreshed every ``precondition_frequency`` steps::

        G' = Q_L^T G Q_R;  M = beta1 M + (1 - beta1) G;  V = beta2 V + (1 - beta2) G'^2
        N = Q_L [(Q_L^T M Q_R) / (sqrt(V) + eps)] Q_R^T
        theta <- (theta - lr sqrt(1 - beta2^s) / (1 - beta1^s) N) (1 - lr lambda)
        L = beta_s L + (1 - beta_s) G G^T;  R = beta_s R + (1 - beta_s) G^T G
        every f steps: Q_L, Q_R <- one power iteration and QR on L Q_L, R Q_R

    The first step only builds L, R and their eigenbases (no update), and s = t - 1. Every
    dimension of a tensor gets a factor unless it is larger than ``max_precondition_dim``
    (then identity); vectors are preconditioned only with ``precondition_1d`` (otherwise
    SOAP is Adam for them). ``merge_dims`` merges small dimensions first (``data_format``
    "channels_last" reads 4-D tensors as NHWC), ``normalize_gradient`` divides N by its RMS,
    ``correct_bias=False`` drops the bias corrections. See `descend.rules.soap.scale_by_soap`.

    Reference: pytorch-optimizer's ``SOAP`` (arguments and defaults are its own), chosen
    over heavyball's because it is a line-for-line port of the authors' first
    implementation (github.com/nikhilvyas/SOAP), which is the paper's Algorithm 3 with the
    same step order, while heavyball rebuilds SOAP from its own chainable transforms (state
    keys suffixed by transform index, its own orthogonalization paths). Tested against it in
    float64 to 1e-10 over 30 steps, eigenbasis refreshes included (the same LAPACK calls on
    the same layouts give the same eigenvectors, signs included), and against a
    transcription of Algorithm 3 written with explicit matrix products. Eigenvectors are
    determined up to sign, and SOAP's update does not depend on the signs (each column
    enters twice). Two properties of the algorithm limit how far any two implementations
    that sum in different orders can agree, and the transcription test avoids them: where
    a factor has a repeated eigenvalue (a tall m x n matrix's G G^T at the first step has
    m - n zero eigenvalues) the basis eigh returns within that eigenspace depends on
    rounding, and SOAP's update depends on the basis (Adam's per-coordinate scaling is not
    rotation invariant); and where G' is zero in exact arithmetic (off the diagonal at the
    second step, when G_2 = G_1 because the first step does not move), SOAP divides
    rounding noise by sqrt(V) + eps, i.e. by about eps.

    Memory: exp_avg and exp_avg_sq like Adam, plus two d x d matrices per preconditioned
    dimension. Complex parameters are refused (as pytorch-optimizer). State:
    ``exp_avg``, ``exp_avg_sq``, ``GG`` (the factors L, R, ...), ``Q`` (their eigenbases),
    both flat (`descend.rules.soap.Layout` reads them), ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 3e-3,
                 betas: tuple[float, float] = (0.95, 0.95), shampoo_beta: float | None = None,
                 weight_decay: float = 1e-2, precondition_frequency: int = 10,
                 max_precondition_dim: int = 10000, merge_dims: bool = False,
                 precondition_1d: bool = False, correct_bias: bool = True,
                 normalize_gradient: bool = False, data_format: str = "channels_first",
                 eps: float = 1e-8, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         shampoo_beta=shampoo_beta,
                         weight_decay=weight_decay,
                         precondition_frequency=precondition_frequency,
                         max_precondition_dim=max_precondition_dim, merge_dims=merge_dims,
                         precondition_1d=precondition_1d, correct_bias=correct_bias,
                         normalize_gradient=normalize_gradient, data_format=data_format,
                         eps=eps, **options)

    def check_param(self, group: dict[str, Any], where: str, p: Tensor) -> None:
        _refuse_complex(type(self).__name__, where, p)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.soap(merge_dims=group["merge_dims"],
                            max_precondition_dim=group["max_precondition_dim"],
                            precondition_1d=group["precondition_1d"],
                            channels_last=group["data_format"] == "channels_last",
                            normalize_gradient=group["normalize_gradient"],
                            correct_bias=group["correct_bias"],
                            weight_decay=group["weight_decay"] != 0)


__all__ = ["SOAP", "Adafactor", "Muon", "MuonAdamW", "is_hidden_matrix", "muon_param_groups"]
