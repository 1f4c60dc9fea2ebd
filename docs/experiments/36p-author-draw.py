#!/usr/bin/env python3
# usage: 36p-author-draw.py SEED OUT.json  (then: adder train --arch OUT.json ...)
# The tbukic 36p's initial draw for a seed, in their code's order: random.seed, torch.manual_seed, then the
# model's nn.Linear layers constructed (each draws its default init) in module order q, k, v, gate, up, down
# (o is absent: tied to q), then model.apply re-draws each N(0, 0.02) in the same order; the ties then
# replace k, v and down, so q, gate and up are what remain.
import json, os, random, sys
import torch, torch.nn as nn
seed, out = int(sys.argv[1]), sys.argv[2]
random.seed(seed); torch.manual_seed(seed)
shapes = [("q", 3, 4), ("k", 3, 4), ("v", 3, 4), ("gate", 3, 2), ("up", 3, 2), ("down", 2, 3)]
layers = {n: nn.Linear(i, o, bias=False) for n, i, o in shapes}
for n, _, _ in shapes:
    nn.init.normal_(layers[n].weight, mean=0.0, std=0.02)
arch = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'architectures', '36p.json')))
arch['name'] = '36p-tbukic-s%d-init' % seed
def vals(n): return [float(f"{x:.9g}") for x in layers[n].weight.detach().flatten().tolist()]
arch['parameters']['attn.W_q']['init'] = vals('q')
arch['parameters']['mlp.W_gate']['init'] = vals('gate')
arch['parameters']['mlp.W_up']['init'] = vals('up')
json.dump(arch, open(out, 'w'), indent=1)
