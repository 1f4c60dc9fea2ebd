"""Rewrites the research-code MicroAdder 67p checkpoint (blocks.0.* names) in the layout of the authors' later
package (evindor/MicroAdder `microadder/`: flat names, its config keys, norm1/norm2/norm_f as stored duplicates),
the layout their 57p checkpoint is saved in.

usage: microadder_package_checkpoint.py SOURCE.pt OUT.pt VARIANT
VARIANT: 67p (fc2 kept), 57p (fc2 dropped, tie_fc2_head), 57p-with-fc2 (tied in the config, fc2 still stored),
norm2-differs (67p with one duplicate norm weight changed)."""
import sys
import torch

source, out, variant = sys.argv[1:4]
old = torch.load(source, map_location="cpu")["model_state_dict"]
rename = {
    "tok_arc_A": "tok_arc_A", "tok_arc_start": "tok_arc_start", "tok_arc_stride": "tok_arc_stride",
    "z_hi_pos": "z_hi_pos", "special_pos_equals": "special_pos_equals",
    "blocks.0.attn.q_phase_angle": "q_phase_angle", "blocks.0.attn.q_proj.weight": "q_proj.weight",
    "blocks.0.attn.out_proj.A": "out_proj.A", "blocks.0.attn.out_proj.B": "out_proj.B",
    "blocks.0.ln1.weight": "norm1.weight", "blocks.0.ffn.fc1.weight": "fc1.weight",
    "blocks.0.ffn.fc2.weight": "fc2.weight", "head_proj.weight": "head_proj.weight",
    "spiral_amp": "spiral_amp", "spiral_phase": "spiral_phase", "spiral_slope": "spiral_slope",
    "spiral_offset": "spiral_offset", "_plus_pos": "_plus_pos", "_eos_pos": "_eos_pos",
}
state = {new: old[name].clone() for name, new in rename.items()}
state["norm2.weight"] = state["norm1.weight"].clone()
state["norm_f.weight"] = state["norm1.weight"].clone()
state["causal_mask"] = torch.tril(torch.ones(34, 34)).unsqueeze(0).unsqueeze(0)
tied = variant.startswith("57p")
if variant == "57p":
    del state["fc2.weight"]
if variant == "norm2-differs":
    state["norm2.weight"][0] += 1.0
config = {
    "d_model": 5, "tok_dim": 2, "pos_dim": 3, "n_heads": 1, "head_dim": 5, "ffn_dim": 2, "vocab_size": 10,
    "max_seq_len": 34, "qk_dim": 4, "norm_mode": "weighted", "qk_input": "pos", "freeze_tok_arc": "",
    "tok_arc_init_A": 2.5, "tok_arc_init_start": -1.2, "tok_arc_init_stride": 0.29, "tie_fc2_head": tied,
    "freeze_spiral": "amp,phase,slope,offset", "spiral_init_amp": 3.5, "spiral_init_phase": 0.0,
    "spiral_init_slope": 0.15, "spiral_init_offset": 0.0, "equals_spiral_idx": -1.0,
}
torch.save({"step": 1, "model_state_dict": state, "config": config, "metrics": {}}, out)
