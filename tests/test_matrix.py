"""Behaviour specific to the matrix optimizers (Adafactor, Muon, MuonAdamW, SOAP): state that
is not parameter-shaped, the 2-D-only contract of Muon and the routing of MuonAdamW. Their
parity, resume, convergence and error inputs are rows of optim_db's table."""

from __future__ import annotations

import io

import pytest
import torch
from problems import loss_fn, make_params, train
from torch import nn

import descend
from descend.rules.orthogonal import newton_schulz
from descend.rules.soap import Layout


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.ModuleDict({"c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d)})
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(d, 4 * d), "c_proj": nn.Linear(4 * d, d)})

    def forward(self, x):
        x = x + self.attn["c_proj"](self.attn["c_attn"](self.ln_1(x))[..., :x.shape[-1]])
        return x + self.mlp["c_proj"](torch.relu(self.mlp["c_fc"](self.ln_2(x))))


class TinyGPT(nn.Module):
    """GPT-2's parameter names: wte, h.0.attn.c_attn, ..., ln_f, lm_head."""

    def __init__(self, vocab: int = 20, d: int = 8) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList([Block(d), Block(d)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def _model(seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    return TinyGPT().double()


def _loss(model: nn.Module) -> torch.Tensor:
    idx = torch.arange(12).reshape(2, 6) % 20
    logits = model(idx)
    return nn.functional.cross_entropy(logits.reshape(-1, 20), (idx + 1).reshape(-1) % 20)


def _train(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()


HIDDEN = {f"h.{i}.{m}.weight" for i in range(2)
          for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}


# -- MuonAdamW ----------------------------------------------------------------------------


def test_muon_param_groups_route_hidden_matrices_to_muon_and_the_rest_to_adamw():
    groups = descend.muon_param_groups(_model().named_parameters())
    muon, adamw = groups
    assert muon["use_muon"] and not adamw["use_muon"]
    assert {name for name, _ in muon["params"]} == HIDDEN
    others = {name for name, _ in adamw["params"]}
    assert {"wte.weight", "lm_head.weight", "ln_f.weight", "h.0.attn.c_attn.bias",
            "h.1.ln_2.weight"} <= others
    assert not others & HIDDEN


@pytest.mark.parametrize("name,shape,hidden", [
    ("model.embed_tokens.weight", (10, 4), False),       # Llama (transformers)
    ("tok_embeddings.weight", (10, 4), False),           # Llama (Meta)
    ("bert.embeddings.word_embeddings.weight", (10, 4), False),
    ("transformer.wpe.weight", (10, 4), False),
    ("output.weight", (10, 4), False),                   # Llama's head
    ("classifier.weight", (3, 4), False),
    ("fc.weight", (10, 4), False),                       # torchvision's head
    ("bert.encoder.layer.0.output.dense.weight", (4, 16), True),  # a hidden layer
    ("layers.0.attention.wq.weight", (4, 4), True),
    ("conv1.weight", (4, 3, 3, 3), False),
    ("layers.0.attention_norm.weight", (4,), False),
])
def test_the_default_route_reads_names_and_shapes(name, shape, hidden):
    assert descend.is_hidden_matrix(name, torch.zeros(shape)) is hidden


def test_muon_adamw_equals_torch_muon_plus_torch_adamw():
    """The same steps as torch.optim.Muon on the hidden matrices and torch.optim.AdamW on
    the rest, in float64."""
    ours, theirs = _model(), _model()
    opt = descend.MuonAdamW(ours.named_parameters(), lr=0.02, weight_decay=0.01,
                            adamw_lr=3e-3, adamw_betas=(0.9, 0.95), adamw_eps=1e-10,
                            adamw_weight_decay=0.05)
    hidden = [p for n, p in theirs.named_parameters() if n in HIDDEN]
    rest = [p for n, p in theirs.named_parameters() if n not in HIDDEN]
    torch_opts = [torch.optim.Muon(hidden, lr=0.02, weight_decay=0.01),
                  torch.optim.AdamW(rest, lr=3e-3, betas=(0.9, 0.95), eps=1e-10,
                                    weight_decay=0.05, foreach=False)]
    for _ in range(8):
        opt.zero_grad()
        _loss(ours).backward()
        opt.step()
        for o in torch_opts:
            o.zero_grad()
        _loss(theirs).backward()
        for o in torch_opts:
            o.step()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=name)
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]
    assert opt.param_groups[1]["lr"] == 3e-3 and opt.param_groups[1]["betas"] == (0.9, 0.95)


def test_muon_adamw_takes_a_model_and_its_embedding_layers_go_to_adamw():
    model = _model()
    model.tokens = model.wte  # an embedding whose name says nothing
    del model.wte
    opt = descend.MuonAdamW(model, lr=0.02)
    adamw = {id(p) for p in opt.param_groups[1]["params"]}
    assert id(model.tokens.weight) in adamw
    assert {n for n, p in model.named_parameters() if id(p) not in adamw} == HIDDEN


def test_the_route_can_be_overridden_and_groups_can_say_use_muon():
    model = _model()
    opt = descend.MuonAdamW(model.named_parameters(),
                            route=lambda name, p: name.startswith("h.0.") and p.dim() == 2)
    assert len(opt.param_groups[0]["params"]) == 4
    hidden = [p for n, p in model.named_parameters() if n in HIDDEN]
    rest = [p for n, p in model.named_parameters() if n not in HIDDEN]
    opt = descend.MuonAdamW([{"params": hidden, "use_muon": True, "lr": 0.05},
                             {"params": rest, "use_muon": False}], adamw_lr=1e-2)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 1e-2]
    _train(model, opt, 2)


def test_muon_adamw_refuses_what_it_cannot_route():
    model = _model()
    with pytest.raises(TypeError, match=r"named_parameters\(\)"):
        descend.MuonAdamW(model.parameters())
    with pytest.raises(ValueError, match=r"'ln_f.weight'.*shape \(8,\).*2-D matrices only"):
        descend.MuonAdamW([{"params": [("ln_f.weight", model.ln_f.weight)],
                            "use_muon": True}])


def test_muon_adamw_resumes_bitwise():
    model = _model()
    opt = descend.MuonAdamW(model.named_parameters(), lr=0.02)
    _train(model, opt, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    _train(model, opt, 3)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    again = _model(1)
    again.load_state_dict(saved["model"])
    opt2 = descend.MuonAdamW(again.named_parameters(), lr=0.02)
    opt2.load_state_dict(saved["opt"])
    _train(again, opt2, 3)
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


# -- Muon ---------------------------------------------------------------------------------


def test_muon_names_a_parameter_that_is_not_a_matrix_and_suggests_muon_adamw():
    model = _model()
    with pytest.raises(ValueError, match=r"parameter 1 of group 0 \('h.0.ln_1.weight'\) "
                       r"has shape \(8,\); Muon optimizes 2-D matrices only.*MuonAdamW"):
        descend.Muon(model.named_parameters())
    with pytest.raises(ValueError, match=r"parameter 0 of group 0 has shape \(3,\)"):
        descend.Muon([torch.zeros(3, requires_grad=True)])


def test_full_precision_newton_schulz_is_what_bfloat16_approximates():
    g = torch.randn(48, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    coefficients = (3.4445, -4.7750, 2.0315)
    exact = newton_schulz(g, coefficients, 5, 1e-7, torch.float64)
    full = newton_schulz(g, coefficients, 5, 1e-7, torch.float32)
    bf16 = newton_schulz(g, coefficients, 5, 1e-7, torch.bfloat16)
    assert full.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert (full.double() - exact).abs().max() < 1e-5
    assert (bf16.double() - exact).abs().max() > 1e-3
    assert exact.shape == g.shape
    # Singular values land near 1 (Keller Jordan's coefficients: within about [0.7, 1.2]).
    s = torch.linalg.svdvals(exact)
    assert s.min() > 0.6 and s.max() < 1.3


def test_newton_schulz_leaves_its_input_alone():
    g = torch.randn(5, 3, dtype=torch.bfloat16)
    before = g.clone()
    newton_schulz(g, (3.4445, -4.7750, 2.0315), 5, 1e-7, torch.bfloat16)
    assert torch.equal(g, before)


# -- state that is not parameter-shaped ------------------------------------------------------


def test_adafactor_keeps_factors_for_matrices_and_a_variance_for_vectors():
    params = make_params(shapes=[(4, 5), (2, 3, 4), (7,), ()])
    opt = descend.Adafactor(params)
    train(opt, params, 2)
    shapes = [{k: tuple(v.shape) for k, v in opt.state[p].items() if torch.is_tensor(v)}
              for p in params]
    assert shapes == [{"row_var": (4, 1), "col_var": (1, 5)},
                      {"row_var": (2, 3, 1), "col_var": (2, 1, 4)},
                      {"variance": (7,)}, {"variance": ()}]


def test_soap_keeps_flat_factors_and_eigenbases():
    params = make_params(shapes=[(4, 5), (7,), (2, 3, 4)])
    opt = descend.SOAP(params, max_precondition_dim=4)
    train(opt, params, 3)
    assert [opt.state[p]["GG"].numel() for p in params] == [16, 0, 4 + 9 + 16]
    layout = Layout(params[0].shape, False, 4, False, False)
    q = layout.factors(opt.state[params[0]]["Q"], column_major=True)
    assert q[1] is None  # 5 > max_precondition_dim: the identity
    torch.testing.assert_close(q[0].T @ q[0], torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("make", [
    lambda p: descend.Adafactor(p, weight_decay=0.1),
    lambda p: descend.SOAP(p, precondition_frequency=2),
    lambda p: descend.LAMB(p, pre_norm=True),
], ids=["adafactor", "soap", "lamb-pre-norm"])
def test_a_cast_converts_state_of_any_shape(make):
    """``model.to(dtype)`` after some steps: factors and preconditioners follow the
    parameters, as torch's load_state_dict casts every floating-point state."""
    params = make_params(torch.float32, shapes=[(4, 5), (3,)])
    opt = make(params)
    train(opt, params, 3)
    for p in params:
        p.data = p.data.double()
    train(opt, params, 3)
    assert all(v.dtype == torch.float64 for p in params for v in opt.state[p].values()
               if torch.is_tensor(v))
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("cls", [descend.Adafactor, descend.Muon, descend.SOAP])
def test_complex_parameters_are_refused(cls):
    z = torch.zeros(3, 3, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(TypeError, match="parameter 0 of group 0 is complex"):
        cls([z])


@pytest.mark.parametrize("backend", ["reference", "foreach", "auto"])
def test_tensor_rules_run_one_tensor_at_a_time_on_every_backend(backend):
    params = make_params(shapes=[(4, 5), (7,), (2, 3, 4)])
    ref = [p.detach().clone().requires_grad_() for p in params]
    for make in (lambda p, b: descend.Adafactor(p, backend=b),
                 lambda p, b: descend.LAMB(p, lr=0.01, pre_norm=True, backend=b),
                 lambda p, b: descend.LARS(p, lr=0.1, backend=b)):
        train(make(params, backend), params, 3)
        train(make(ref, "reference"), ref, 3)
        for p, q in zip(params, ref):
            assert torch.equal(p, q)
    assert loss_fn(params).isfinite()


@pytest.mark.parametrize("ours,theirs,kwargs,shapes", [
    (descend.Adafactor, torch.optim.Adafactor, dict(lr=0.02, weight_decay=0.1),
     [(4, 5), (7,), (2, 3, 4)]),
    (descend.Muon, torch.optim.Muon, dict(lr=0.02), [(4, 5), (6, 3)]),
], ids=["adafactor", "muon"])
def test_state_dicts_load_from_and_into_torch(ours, theirs, kwargs, shapes):
    """Non-parameter-shaped state (Adafactor's factors) keeps torch's names and layout, so
    a run continues in the other library with the same numbers."""
    a, b = make_params(shapes=shapes), make_params(shapes=shapes)
    opt_a, opt_b = ours(a, **kwargs), theirs(b, **kwargs)
    train(opt_a, a, 3), train(opt_b, b, 3)
    # Swap: torch's state into descend, descend's into torch.
    swapped_a, swapped_b = ours(a, **kwargs), theirs(b, **kwargs)
    swapped_a.load_state_dict(opt_b.state_dict())
    swapped_b.load_state_dict(opt_a.state_dict())
    for p, q in zip(a, b):
        q.data.copy_(p.data)  # descend and torch agree to rounding; continue from one point
    train(swapped_a, a, 3), train(swapped_b, b, 3)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
