"""AdderBoard submission exported by `adder export --format adderboard` (an Adder architecture).

One-layer decoder-only transformer. Its unique parameters are the nn.Parameters below (the architecture's
stored parameters); every matrix the block uses (its roles) is derived from them in roles(), the ties written
out as tensor expressions. forward() is a plain tokens-in, logits-out computation; add() encodes the prompt in
the model's token format and runs a generic greedy decoding loop outside the model. The weights are embedded
(base64 of little-endian float32, in PARAMETERS' order).

Run: python verify.py this_file.py   (AdderBoard's verification), or: python this_file.py 123 456
"""
import base64
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHITECTURE = json.loads(__ARCHITECTURE__)
PARAMETERS = json.loads(__PARAMETERS__)  # [name, shape] in the order of WEIGHTS
METADATA = json.loads(__METADATA__)
WEIGHTS = (
__WEIGHTS__
)
FORMAT = ARCHITECTURE["format"]
DIGITS = 10  # operand digits; the sum is generated with DIGITS + 1 digits, least significant first


def _rot(angle, n):
    """n x n rotation of the pairs (0, 1), (2, 3), ... by one angle: [[cos, -sin], [sin, cos]]."""
    c, s = torch.cos(angle.reshape(())), torch.sin(angle.reshape(()))
    m = torch.zeros(n, n, dtype=angle.dtype)
    for i in range(0, n, 2):
        m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = c, -s, s, c
    return m


def _arc(p, n):
    """The circular-arc table A * (cos(s + d * delta), sin(s + d * delta)) for d = 0..n-1, p = (A, s, delta)."""
    p = p.reshape(-1)
    t = p[1] + torch.arange(n, dtype=p.dtype) * p[2]
    return torch.stack([p[0] * torch.cos(t), p[0] * torch.sin(t)], dim=1)


def _place(rows, cols, parts):
    """Blocks placed at (row, col) offsets of a zero matrix."""
    dtype = parts[0][0].dtype
    m = torch.zeros(rows, cols, dtype=dtype)
    for x, r, c in parts:
        m[r:r + x.shape[0], c:c + x.shape[1]] = x
    return m


def _rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


class ArchitectureModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.params = nn.ParameterList([nn.Parameter(torch.zeros(*(shape or [1]))) for _, shape in PARAMETERS])
        self.names = [name for name, _ in PARAMETERS]
        rope = ARCHITECTURE.get("rope_theta")
        if rope is not None:
            # cos and sin of every position's pair angles, computed in float32 as PyTorch rotary tables are
            n = self.roles()["q"].shape[0]
            freq = 1.0 / (rope ** (torch.arange(0, n, 2, dtype=torch.float64) / n))
            angles = torch.arange(64, dtype=torch.float32)[:, None] * freq.to(torch.float32)[None, :]
            self.register_buffer("rope_cos", torch.cos(angles).to(torch.float64), persistent=False)
            self.register_buffer("rope_sin", torch.sin(angles).to(torch.float64), persistent=False)

    def roles(self):
        """Every role's effective matrix (out x in, applied as W @ x) from the stored parameters."""
        P = {name: p.to(torch.float64) for name, p in zip(self.names, self.params)}
        n = {}
__ROLES__
        return R

    def _rope(self, x):
        T = x.shape[-2]
        c, s = self.rope_cos[:T], self.rope_sin[:T]
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out

    def forward(self, idx):
        R = self.roles()
        eps, qk_eps = ARCHITECTURE["norm_eps"], ARCHITECTURE["qk_norm_eps"]
        T = idx.shape[1]
        x = R["token_embedding"][idx]
        if "position_embedding" in R:
            x = x + R["position_embedding"][:T]
        h = _rms(x, R["ln1"].reshape(-1), eps)
        q, k, v = h @ R["q"].t(), h @ R["k"].t(), h @ R["v"].t()
        if "q_norm" in R:
            q, k = _rms(q, R["q_norm"].reshape(-1), qk_eps), _rms(k, R["k_norm"].reshape(-1), qk_eps)
        if ARCHITECTURE.get("rope_theta") is not None:
            q, k = self._rope(q), self._rope(k)
        scale = ARCHITECTURE.get("attention_scale") or 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ k.transpose(-1, -2)) * scale
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        x = x + (F.softmax(scores, dim=-1) @ v) @ R["o"].t()
        h = _rms(x, R["ln2"].reshape(-1), eps)
        if ARCHITECTURE["mlp"] == "swiglu":
            m = (F.silu(h @ R["mlp_gate"].t()) * (h @ R["mlp_up"].t())) @ R["mlp_down"].t()
        else:
            m = F.gelu(h @ R["mlp_in"].t()) @ R["mlp_out"].t()
        x = x + m
        return _rms(x, R["ln_final"].reshape(-1), eps) @ R["head"].t()


def _digits(x, count):
    return [(x // 10 ** i) % 10 for i in range(count)]


def _prompt(a, b):
    """The model's token format (Adder's TokenFormat): the prompt of a + b."""
    if FORMAT == "lsb10":
        return [0] + _digits(a, DIGITS) + [0, 0] + _digits(b, DIGITS) + [0]
    if FORMAT == "microadder":
        return _digits(a, DIGITS) + [0] + _digits(b, DIGITS) + [0]
    if FORMAT == "seed":
        return _digits(a, DIGITS)[::-1] + [10] + _digits(b, DIGITS)[::-1] + [11]
    raise ValueError("unknown token format " + FORMAT)


def build_model():
    model = ArchitectureModel()
    raw = base64.b64decode("".join(WEIGHTS))
    values = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    offset = 0
    with torch.no_grad():
        for p in model.params:
            p.copy_(values[offset:offset + p.numel()].reshape(p.shape))
            offset += p.numel()
    model.eval()
    return model, dict(METADATA)


def add(model, a: int, b: int) -> int:
    seq = torch.tensor([_prompt(a, b)], dtype=torch.long)
    result = 0
    with torch.no_grad():
        for i in range(DIGITS + 1):
            token = int(model(seq)[0, -1].argmax())
            if token > 9:
                raise ValueError("the model generated a non-digit token")
            result += token * 10 ** i
            seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
    return result


if __name__ == "__main__":
    model, meta = build_model()
    print(meta["name"], "-", meta["params"], "unique parameters")
    if len(sys.argv) == 3:
        print(add(model, int(sys.argv[1]), int(sys.argv[2])))
