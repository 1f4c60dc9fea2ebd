"""PyTorch's training step for the 62p "Qwen3 + arc" block (../shared/reference/FRONTIER.md §A), for the side-by-side
figure of `adder bench train --preset 62p`: the same block, batch, optimizer and thread count, float32, CPU.

usage: torch_62p_step.py [--batch 128] [--threads 2] [--seconds 5]
Prints the median steps/s of one-second windows after a warm-up."""
import argparse, math, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=128)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seconds", type=int, default=5)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)


def rms(x, w, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Block62(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        self.arc = P(torch.tensor([2.5, -1.2, 0.29]))
        self.wq, self.wk = P(torch.randn(4, 3) * 0.02), P(torch.randn(4, 3) * 0.02)
        self.nq, self.nk = P(torch.ones(4)), P(torch.ones(4))
        self.w1, self.w2, self.wf = P(torch.ones(3)), P(torch.ones(3)), P(torch.ones(3))
        self.gate, self.up, self.down = P(torch.randn(2, 3) * 0.02), P(torch.randn(2, 3) * 0.02), P(torch.randn(3, 2) * 0.02)
        t = torch.arange(34.0)[:, None] * torch.tensor([1.0, 3.0 ** -0.5])[None, :]
        self.register_buffer("cos", t.cos()), self.register_buffer("sin", t.sin())
        self.register_buffer("mask", torch.tril(torch.ones(34, 34, dtype=torch.bool)))

    def rope(self, x):
        a, b = x[..., 0::2], x[..., 1::2]
        c, s = self.cos[: x.shape[1]], self.sin[: x.shape[1]]
        return torch.stack([a * c - b * s, a * s + b * c], -1).flatten(-2)

    def forward(self, tokens):
        A, s, d = self.arc
        angle = s + torch.arange(10.0) * d
        E = torch.stack([A * angle.cos(), A * angle.sin(), torch.zeros(10)], 1)
        x0 = E[tokens]
        h = rms(x0, self.w1)
        q, k = h @ self.wq.T, h @ self.wk.T
        v = k
        qr, kr = self.rope(rms(q, self.nq)), self.rope(rms(k, self.nk))
        att = (qr @ kr.transpose(1, 2)) / 2
        att = att.masked_fill(~self.mask[: tokens.shape[1], : tokens.shape[1]], float("-inf")).softmax(-1)
        x1 = x0 + (att @ v) @ self.wq
        g = rms(x1, self.w2)
        x2 = x1 + (torch.nn.functional.silu(g @ self.gate.T) * (g @ self.up.T)) @ self.down.T
        return rms(x2, self.wf) @ E.T


def batch(n):
    a, b = torch.randint(0, 10**10, (n,)), torch.randint(0, 10**10, (n,))
    digits = lambda x, k: torch.stack([(x // 10**i) % 10 for i in range(k)], 1)
    z = torch.zeros(n, 1, dtype=torch.long)
    return torch.cat([z, digits(a, 10), z, z, digits(b, 10), z, digits(a + b, 11)], 1)  # 35 tokens


model = Block62()
assert sum(p.numel() for p in model.parameters()) == 62
opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
data = [batch(args.batch) for _ in range(64)]


def step(i):
    seq = data[i % len(data)]
    logits = model(seq[:, :34])
    loss = torch.nn.functional.cross_entropy(logits[:, 23:34].reshape(-1, 10), seq[:, 24:35].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


for i in range(50):
    step(i)
rates, i = [], 0
for _ in range(args.seconds):
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        step(i); i += 1; n += 1
    rates.append(n / (time.perf_counter() - start))
print(f"torch {torch.__version__} 62p batch {args.batch}, {args.threads} threads: {statistics.median(rates):.0f} steps/s "
      f"(median of {len(rates)} 1-s windows: {' '.join(f'{r:.0f}' for r in rates)})")
