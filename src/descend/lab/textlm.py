"""A small decoder-only transformer language model on text every Python ships.

The corpus is CPython's `pydoc_data.topics`: the help texts of the language reference
(about 465,000 characters of English prose and code), so the workload runs offline. The
text is modelled byte by byte (UTF-8, a vocabulary of 256): no tokenizer to fit, and the
loss is in nats per byte. The bytes are split into contiguous stretches (90% train, 5%
validation, 5% test: the model never trains on the text it is validated on), and each
stretch is cut into non-overlapping windows of `context + 1` bytes; a window's first
`context` bytes are the input and its last `context` the targets.

The corpus belongs to the Python that runs the lab: another Python version ships other help
texts, and its numbers are not comparable. `corpus_id()` names the version and a hash.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .data import Splits

VOCAB = 256


@cache
def corpus() -> bytes:
    """The help topics, sorted by name and joined by blank lines, as UTF-8 bytes."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def corpus_id() -> str:
    digest = hashlib.sha256(corpus()).hexdigest()[:12]
    return f"pydoc_data.topics of Python {sys.version_info.major}.{sys.version_info.minor} " \
           f"({len(corpus()):,} bytes, sha256 {digest})"


def _windows(data: Tensor, context: int) -> tuple[Tensor, Tensor]:
    n = (len(data) - 1) // context
    x = data[: n * context].view(n, context)
    y = data[1: n * context + 1].view(n, context)
    return x.clone(), y.clone()


def text_splits(context: int, fraction: float = 1.0) -> Splits:
    """Windows of the corpus: inputs and next-byte targets, both (windows, context) int64.
    `fraction` < 1 keeps only the first part of each stretch (a smaller workload)."""
    data = torch.frombuffer(bytearray(corpus()), dtype=torch.uint8).long()
    n = len(data)
    a, b = int(0.9 * n), int(0.95 * n)
    stretches = [data[:a], data[a:b], data[b:]]
    if fraction < 1.0:
        stretches = [s[: max(context + 1, int(len(s) * fraction))] for s in stretches]
    (xt, yt), (xv, yv), (xs, ys) = (_windows(s, context) for s in stretches)
    return Splits(xt, yt, xv, yv, xs, ys)


@dataclass(frozen=True)
class GPTConfig:
    context: int = 64
    width: int = 64
    layers: int = 2
    heads: int = 4


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2), is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TinyGPT(nn.Module):
    """A GPT-2-shaped byte model: token and position embeddings, pre-norm blocks, a final
    norm and an untied output head. Module names follow GPT conventions (`embed`, `head`),
    which is how Muon-style optimizers tell hidden matrices from the rest."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB, cfg.width)
        self.pos_embed = nn.Embedding(cfg.context, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, VOCAB)
        # GPT-2's initialisation scaled to the width: N(0, 1/width), residual projections
        # scaled by 1/sqrt(2L). GPT-2's fixed 0.02 (about 0.55/sqrt(width) at its width of
        # 768) is far too small at width 48: half of the seeds then sat on the unigram
        # plateau for a hundred steps, and the final validation loss of six seeds of one
        # configuration spread over 2.01-2.30 nats; with 1/sqrt(width), 1.86-1.89.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                base = 1 / math.sqrt(cfg.width)
                std = base / math.sqrt(2 * cfg.layers) if name.endswith(
                    ("proj.weight", "down.weight")) else base
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        x = self.embed(idx) + self.pos_embed(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def byte_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy per byte (nats); perplexity is its exponential."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
