"""Loads an AdderBoard submission and prints, as JSON, its metadata, the count of its unique parameters and
its logits for one token sequence: python submission_logits.py SUBMISSION.py '[t0, t1, ...]'."""
import importlib.util
import json
import sys

import torch


def main(path, tokens):
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, metadata = module.build_model()
    seen = set()
    unique = sum(p.numel() for p in model.parameters() if id(p) not in seen and not seen.add(id(p)))
    with torch.no_grad():
        logits = model(torch.tensor([json.loads(tokens)], dtype=torch.long))[0]
    print(json.dumps({"metadata": metadata, "unique": unique, "logits": logits.double().tolist(),
                      "sum": module.add(model, 1234567890, 9876543210)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
