"""What ExportTests asks of PyTorch, one command per call (a JSON object on stdout):
  logits CKPT PAIRS.json    teacher-forced logits (float64 SpecModel) of the pairs' 33-token inputs
  count CKPT                exact-match count of the float32 SpecModel on AdderBoard's 10,010 pairs
  inspect CKPT              torch.load's view: keys, model_config, tied-head storage sharing, scalars
"""
import json
import sys

import torch

import spec_model
import verify

torch.set_num_threads(1)


def main(argv):
    command, path = argv[0], argv[1]
    if command == "logits":
        state, config = spec_model.load(path)
        pairs = [tuple(p) for p in json.load(open(argv[2]))]
        logits = spec_model.SpecModel(state, config, torch.float64).logits(spec_model.full_inputs(pairs))
        result = {"logits": logits.flatten().tolist()}
    elif command == "count":
        state, config = spec_model.load(path)
        pairs = verify.cases()
        sums = spec_model.greedy_sums(spec_model.SpecModel(state, config, torch.float32), pairs)
        result = {"correct": sum(s == a + b for s, (a, b) in zip(sums, pairs)), "total": len(pairs)}
    elif command == "inspect":
        ck = torch.load(path, map_location="cpu")
        ms = ck["model_state"]
        result = {
            "type": type(ms).__name__,
            "keys": list(ms),
            "tied": ms["lm_head.weight"].data_ptr() == ms["token_emb.weight"].data_ptr() if "lm_head.weight" in ms else None,
            "shapes": {k: list(v.shape) for k, v in ms.items()},
            "model_config": ck["model_config"],
            "step": ck["step"], "val_exact": ck["val_exact"], "params": ck["params"],
        }
    else:
        raise SystemExit(f"unknown command {command}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
