#!/usr/bin/env python3
"""The MicroAdder authors' initial weights for a seed, drawn by their own package, as a checkpoint `adder convert` reads.

    python3 scripts/microadder-draw.py PACKAGE_ROOT CONFIG.json SEED OUT.pt
    adder convert OUT.pt -o draw.safetensors

PACKAGE_ROOT holds their `microadder/` package (evindor/MicroAdder, MIT); CONFIG.json is one of their submission
configs (its "model" part). The draw is theirs: random.seed(SEED), torch.manual_seed(SEED), then the model, as their
train.py does before training.
"""
import dataclasses, json, random, sys

if len(sys.argv) != 5:
    sys.exit("usage: microadder-draw.py PACKAGE_ROOT CONFIG.json SEED OUT.pt")
root, config, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, root)
import torch
from microadder.model import MicroAdder, ModelConfig

model_config = json.load(open(config))["model"]
fields = {f.name for f in dataclasses.fields(ModelConfig)}
cfg = ModelConfig(**{k: v for k, v in model_config.items() if k in fields})
random.seed(seed)
torch.manual_seed(seed)
model = MicroAdder(cfg)
torch.save({"step": 0, "model_state_dict": model.state_dict(), "config": cfg.to_dict()}, out)
print(f"{out}: seed {seed}, {sum(p.numel() for p in model.parameters() if p.requires_grad)} trainable parameters")
