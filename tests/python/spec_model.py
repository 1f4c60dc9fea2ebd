"""The model of SPEC section 2 written from the SPEC alone (independent of adder's C# code and of the
AdderBoard template it exports), for the tests: loads a checkpoint's state dict and model_config, computes
teacher-forced logits and greedy sums, in float32 or float64."""
import json
import math
import struct

import torch

PLUS, EQUALS, EOS = 10, 11, 13


def load_safetensors(path):
    """Our safetensors files without the safetensors package: 8-byte header length, JSON header, raw float32."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    state = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", t
        begin, end = t["data_offsets"]
        state[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).view(t["shape"])
    return state, meta


def load(path):
    """(state, config) from a .pt (torch.load) or one of our .safetensors files."""
    if path.endswith(".safetensors"):
        state, meta = load_safetensors(path)
        return state, json.loads(meta["model_config"])
    ck = torch.load(path, map_location="cpu")
    return dict(ck["model_state"]), ck["model_config"]


class SpecModel:
    def __init__(self, state, config, dtype=torch.float64):
        self.c = config
        self.w = {k: v.to(dtype) for k, v in state.items()}
        self.dtype = dtype
        if "lm_head.weight" in self.w:
            assert torch.equal(self.w["lm_head.weight"], self.w["token_emb.weight"]), "head must be tied"

    def lin(self, x, name, rank):
        # low rank: x·A·B; full: x·Wᵀ with W out×in
        if rank > 0:
            return x @ self.w[name + ".A"] @ self.w[name + ".B"]
        return x @ self.w[name + ".weight"].T

    def norm(self, x, name):
        if self.c["use_rmsnorm"]:
            return x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-8) * self.w[name + ".weight"]
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def logits(self, tokens):
        """tokens [B, T] -> logits [B, T, vocab]."""
        c, w = self.c, self.w
        B, T = tokens.shape
        d, H = c["d_model"], c["n_head"]
        hd = d // H
        P = w["pos_emb.A"] @ w["pos_emb.B"] if c["pos_rank"] > 0 else w["pos_emb.weight"]
        x = w["token_emb.weight"][tokens] + P[:T]
        for l in range(c["n_layer"]):
            p = f"blocks.{l}."
            n1 = self.norm(x, p + "ln1")
            if c["tie_qkv"] == "shareA_tieKV":
                h = n1 @ w[p + "attn.qkv_A"]
                q, k = h @ w[p + "attn.qkv_Bq"], h @ w[p + "attn.qkv_Bkv"]
                v = k
            else:
                q, k, v = (self.lin(n1, p + "attn." + s, c["qkv_rank"]) for s in "qkv")
            ys = []
            for head in range(H):
                sl = slice(head * hd, (head + 1) * hd)
                s = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(hd)
                s = s + torch.triu(torch.full((T, T), float("-inf"), dtype=self.dtype, device=s.device), 1)
                ys.append(torch.softmax(s, -1) @ v[..., sl])
            x = x + self.lin(torch.cat(ys, -1), p + "attn.proj", c["attn_out_rank"])
            u = self.lin(self.norm(x, p + "ln2"), p + "mlp.fc1", c["ffn_rank"])
            g = 0.5 * u * (1 + torch.erf(u / math.sqrt(2)))
            x = x + self.lin(g, p + "mlp.fc2", c["ffn_rank"])
        return self.norm(x, "ln_f") @ w["token_emb.weight"].T


def digits(n, width):
    return [int(ch) for ch in str(n).zfill(width)]


def prompts(pairs):
    return torch.tensor([digits(a, 10) + [PLUS] + digits(b, 10) + [EQUALS] for a, b in pairs])


def full_inputs(pairs):
    """The 33 input tokens of each pair's training sequence (prompt, reversed 11-digit sum, without <EOS>)."""
    return torch.tensor([digits(a, 10) + [PLUS] + digits(b, 10) + [EQUALS] + digits(a + b, 11)[::-1] for a, b in pairs])


@torch.no_grad()
def greedy_sums(model, pairs, batch=4096):
    """Greedy decoding (argmax, lowest id on ties) of 11 tokens; returns the sums (None where a token is not a digit)."""
    out = []
    for i in range(0, len(pairs), batch):
        tokens = prompts(pairs[i:i + batch])
        for _ in range(11):
            nxt = model.logits(tokens)[:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, nxt], 1)
        for row in tokens[:, 22:].tolist():
            out.append(int("".join(map(str, row[::-1]))) if all(t < 10 for t in row) else None)
    return out
