"""AdderBoard submission: __NAME__, exported by `adder export --format adderboard`.

A decoder-only transformer that adds two 10-digit integers (Adder's SPEC section 2): token and learned
position embeddings, pre-norm blocks (attention, GELU MLP), a final norm and the output head tied to the
token embedding. Projections are low-rank (x @ A @ B) or full (x @ W.T, torch Linear layout) as the config
says. forward() is a plain tokens-in, logits-out computation; add() runs a generic greedy decoding loop
outside the model. The weights are embedded below (base64 of little-endian float32, in TENSORS' order).

Run: python verify.py this_file.py   (AdderBoard's verification), or: python this_file.py 123 456
"""
import base64
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = json.loads(__CONFIG__)
TENSORS = json.loads(__TENSORS__)  # [name, shape] in the order of WEIGHTS
METADATA = json.loads(__METADATA__)
WEIGHTS = (
__WEIGHTS__
)

PLUS, EQUALS = 10, 11  # vocabulary: digits 0-9 are ids 0-9, '+' 10, '=' 11, <PAD> 12, <EOS> 13
DIGITS = 10            # operand digits; the sum is generated with DIGITS + 1 digits, least significant first


class Projection(nn.Module):
    """x @ A @ B when rank > 0, else x @ weight.T (weight is out x in)."""

    def __init__(self, d_in, d_out, rank):
        super().__init__()
        self.rank = rank
        if rank > 0:
            self.A = nn.Parameter(torch.zeros(d_in, rank))
            self.B = nn.Parameter(torch.zeros(rank, d_out))
        else:
            self.weight = nn.Parameter(torch.zeros(d_out, d_in))

    def forward(self, x):
        return x @ self.A @ self.B if self.rank > 0 else x @ self.weight.t()


class Norm(nn.Module):
    """RMSNorm (eps 1e-8, weight only) or LayerNorm (eps 1e-5, weight and bias)."""

    def __init__(self, d, rms):
        super().__init__()
        self.rms = rms
        self.weight = nn.Parameter(torch.ones(d))
        if not rms:
            self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        if self.rms:
            return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-8) * self.weight
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, 1e-5)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, r = c["d_model"], c["qkv_rank"]
        self.n_head = c["n_head"]
        self.tied = c["tie_qkv"] == "shareA_tieKV"
        if self.tied:  # h = x @ qkv_A; q = h @ qkv_Bq; k = v = h @ qkv_Bkv
            self.qkv_A = nn.Parameter(torch.zeros(d, r))
            self.qkv_Bq = nn.Parameter(torch.zeros(r, d))
            self.qkv_Bkv = nn.Parameter(torch.zeros(r, d))
        else:
            self.q = Projection(d, d, r)
            self.k = Projection(d, d, r)
            self.v = Projection(d, d, r)
        self.proj = Projection(d, d, c["attn_out_rank"])

    def forward(self, x):
        batch, t, d = x.shape
        heads, hd = self.n_head, d // self.n_head
        if self.tied:
            h = x @ self.qkv_A
            q, k = h @ self.qkv_Bq, h @ self.qkv_Bkv
            v = k
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q, k, v = (z.view(batch, t, heads, hd).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = scores.softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(batch, t, d))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, rms = c["d_model"], c["use_rmsnorm"]
        self.ln1 = Norm(d, rms)
        self.attn = Attention(c)
        self.ln2 = Norm(d, rms)
        self.mlp = nn.Module()
        self.mlp.fc1 = Projection(d, c["d_ff"], c["ffn_rank"])
        self.mlp.fc2 = Projection(c["d_ff"], d, c["ffn_rank"])

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.ln2(x))))  # exact (erf) GELU


class PositionEmbedding(nn.Module):
    """Learned positions: P = A @ B (low rank) or a full table; row t is position t."""

    def __init__(self, n, d, rank):
        super().__init__()
        self.rank = rank
        if rank > 0:
            self.A = nn.Parameter(torch.zeros(n, rank))
            self.B = nn.Parameter(torch.zeros(rank, d))
        else:
            self.weight = nn.Parameter(torch.zeros(n, d))

    def forward(self, t):
        table = self.A @ self.B if self.rank > 0 else self.weight
        return table[:t]


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_emb = nn.Embedding(c["vocab_size"], c["d_model"])
        self.pos_emb = PositionEmbedding(c["max_seq_len"], c["d_model"], c["pos_rank"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = Norm(c["d_model"], c["use_rmsnorm"])

    def forward(self, tokens):
        """tokens: [batch, t] ids -> logits [batch, t, vocab]; the output head is the token embedding."""
        x = self.token_emb(tokens) + self.pos_emb(tokens.shape[1])
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.token_emb.weight.t()


def build_model():
    model = Transformer(CONFIG)
    flat = torch.frombuffer(bytearray(base64.b64decode("".join(WEIGHTS))), dtype=torch.float32)
    state, offset = {}, 0
    for name, shape in TENSORS:
        size = math.prod(shape)
        state[name] = flat[offset:offset + size].view(*shape).clone()
        offset += size
    if offset != flat.numel():
        raise ValueError(f"embedded weights hold {flat.numel()} values, the tensors need {offset}")
    model.load_state_dict(state, strict=True)
    model.eval()
    unique = sum(p.numel() for p in model.parameters())  # parameters() lists each (tied) tensor once
    if unique != METADATA["params"]:
        raise ValueError(f"model has {unique} parameters, metadata says {METADATA['params']}")
    return model, dict(METADATA)


def _digits(n):
    return [int(ch) for ch in f"{n:0{DIGITS}d}"]


@torch.no_grad()
def add(model, a: int, b: int) -> int:
    """Greedy decoding: feed the prompt, append the argmax token, repeat; the generated tokens are the
    sum's digits, least significant first."""
    if not (0 <= a < 10 ** DIGITS and 0 <= b < 10 ** DIGITS):
        raise ValueError("operands must be in [0, 9999999999]")
    tokens = torch.tensor([_digits(a) + [PLUS] + _digits(b) + [EQUALS]])
    generated = []
    for _ in range(DIGITS + 1):
        logits = model(tokens)
        nxt = int(logits[0, -1].argmax())
        generated.append(nxt)
        tokens = torch.cat([tokens, torch.tensor([[nxt]])], dim=1)
    if any(tok > 9 for tok in generated):
        raise ValueError(f"model produced a non-digit token: {generated}")
    return int("".join(str(tok) for tok in reversed(generated)))


if __name__ == "__main__":
    m, meta = build_model()
    x, y = (int(v) for v in sys.argv[1:3]) if len(sys.argv) >= 3 else (1234567890, 9876543210)
    print(f"{meta['name']} ({meta['params']} parameters): {x} + {y} = {add(m, x, y)}")
