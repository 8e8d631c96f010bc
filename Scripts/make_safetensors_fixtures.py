"""Writes small safetensors files with the Python library, for the Swift reader's tests.

Usage: python Scripts/make_safetensors_fixtures.py Tests/LayersTests/Fixtures
Needs: pip install torch safetensors
Each file holds the values 0.5 * i - 3 for i in 0..<12 as a [3, 4] tensor in one dtype (F32, F16, BF16 are
exact for these values), an I64 tensor [[1, -2, 3]], a scalar and an empty tensor, with metadata.
"""
import os, sys
import torch
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/LayersTests/Fixtures"
os.makedirs(out, exist_ok=True)
values = torch.arange(12, dtype=torch.float64).reshape(3, 4) * 0.5 - 3
for dtype, name in [(torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16"), (torch.float64, "f64")]:
    save_file({"weights": values.to(dtype), "ids": torch.tensor([[1, -2, 3]], dtype=torch.int64),
               "scalar": torch.tensor(2.5, dtype=dtype), "empty": torch.zeros(0, dtype=dtype)},
              os.path.join(out, f"python_{name}.safetensors"), metadata={"made_by": "python", "dtype": name})
print("wrote", sorted(os.listdir(out)))
