"""Loads a model directory written by AlbertMoE (Swift) into the PyTorch reference, strictly, and prints the
logits of a few tokens, to compare with the Swift model's on the same input. A pytorch_model.bin in the directory
(`albertmoe convert --to pytorch`) is loaded with torch.load(weights_only=True) and must equal model.safetensors
tensor for tensor when both are there.

Usage: python Scripts/check_checkpoint_in_pytorch.py MODEL_DIR [REFERENCE_DIR] [TOKEN_ID ...]
Needs: pip install torch safetensors
"""
import json, os, sys
import torch
from safetensors.torch import load_file

model_dir = sys.argv[1]
ref_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")
tokens = [int(t) for t in sys.argv[3:]] or [5, 9, 12, 7, 30, 2]
sys.path.insert(0, ref_dir)
import albertmoe_ref as R

cfg = json.load(open(os.path.join(model_dir, "config.json")))
config = R.Config(**{k: v for k, v in cfg.items() if k in R.Config.__dataclass_fields__})
arch = (cfg.get("architectures") or ["AlbertForMaskedLM"])[0]
model = R.AlbertForCausalLM(config, causal=True) if arch == "AlbertForCausalLM" else R.AlbertForMaskedLM(config)
safetensors_path, pytorch_path = os.path.join(model_dir, "model.safetensors"), os.path.join(model_dir, "pytorch_model.bin")
state = load_file(safetensors_path) if os.path.exists(safetensors_path) else None
if os.path.exists(pytorch_path):
    pt = torch.load(pytorch_path, weights_only=True, map_location="cpu")
    if state is not None:
        assert set(pt) == set(state), f"pytorch_model.bin keys differ: {sorted(set(pt) ^ set(state))}"
        for k in state:
            assert pt[k].dtype == state[k].dtype and torch.equal(pt[k], state[k]), f"pytorch_model.bin differs at {k}"
        print(f"pytorch_model.bin (torch.load weights_only=True) equals model.safetensors: {len(pt)} tensors")
    state = pt
model.load_state_dict(state, strict=True)
model.eval()
with torch.no_grad():
    logits = model(torch.tensor([tokens]))["logits"]
print(arch, "loaded strictly; logits[0, 0, :6] =", [round(v, 6) for v in logits[0, 0, :6].tolist()])
