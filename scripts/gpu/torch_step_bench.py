"""PyTorch's training step of the SPEC model (the tests' own tests/python/spec_model.py), timed on the GPU for the
ratio in docs/BENCHMARKS.md: forward, cross-entropy on the 12 scored positions, backward, clipping, AdamW, batch 512
of random 10-digit pairs. Usage: python3 scripts/gpu/torch_step_bench.py [--device cuda] [--steps 300]"""
import argparse
import math
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "python"))
from spec_model import SpecModel, full_inputs, digits  # noqa: E402

CONFIG = dict(n_layer=1, d_model=4, n_head=1, d_ff=8, max_seq_len=33, vocab_size=14, pos_rank=3, qkv_rank=3,
              attn_out_rank=3, ffn_rank=3, use_rmsnorm=True, tie_qkv="shareA_tieKV")


def init_state(gen):
    """SPEC section 2's initialisation for the 311p shapes."""
    d, r, f = 4, 3, 8
    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std
    xav = lambda i, o: math.sqrt(2 / (i + o))
    s = {"token_emb.weight": normal((14, d), 0.02), "pos_emb.A": normal((33, r), 0.02), "pos_emb.B": normal((r, d), 0.02),
         "blocks.0.ln1.weight": torch.ones(d), "blocks.0.attn.qkv_A": normal((d, r), xav(d, r)),
         "blocks.0.attn.qkv_Bq": normal((r, d), xav(r, d)), "blocks.0.attn.qkv_Bkv": normal((r, d), xav(r, d)),
         "blocks.0.attn.proj.A": normal((d, r), xav(d, r)), "blocks.0.attn.proj.B": normal((r, d), xav(r, d)),
         "blocks.0.ln2.weight": torch.ones(d), "blocks.0.mlp.fc1.A": normal((d, r), xav(d, r)),
         "blocks.0.mlp.fc1.B": normal((r, f), xav(r, f)), "blocks.0.mlp.fc2.A": normal((f, r), xav(f, r)),
         "blocks.0.mlp.fc2.B": normal((r, d), xav(r, d)), "ln_f.weight": torch.ones(d)}
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    dev = torch.device(args.device)
    state = {k: v.to(dev).requires_grad_(True) for k, v in init_state(torch.Generator().manual_seed(1)).items()}
    model = SpecModel(state, CONFIG, dtype=torch.float32)
    model.w = state   # train the leaf tensors themselves
    opt = torch.optim.AdamW(list(state.values()), lr=1e-3, weight_decay=0.01)
    rng = random.Random(1)
    pairs = [(rng.randrange(10 ** 10), rng.randrange(10 ** 10)) for _ in range(args.batch)]
    inputs = full_inputs(pairs).to(dev)
    labels = torch.tensor([digits(a + b, 11)[::-1] + [13] for a, b in pairs]).to(dev)   # positions 21..32

    def step():
        logits = model.logits(inputs)[:, 21:33]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 14), labels.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(state.values()), 1.0)
        opt.step()
        return loss

    for _ in range(20):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rates.append(args.steps / (time.perf_counter() - t0))
    rates.sort()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} on {name}: SPEC 311p training step, batch {args.batch}: "
          f"{rates[1]:.0f} steps/s (median of 3 windows of {args.steps}: {' '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
