"""Writes small PyTorch checkpoint files with torch.save, for the Swift reader's tests, and the values the reader
must find in them (torch_expected.json: file -> tensor name -> shape, dtype and row-major values).

Usage: python Scripts/make_pytorch_fixtures.py [Tests/LayersTests/Fixtures [Tests/AlbertMoETests/Fixtures]]
Needs: pip install torch safetensors, and the reference model (../shared/reference/albertmoe_ref.py, or REFERENCE_DIR)

Files that load: torch_dtypes.bin (each dtype, a scalar, an empty tensor), torch_views.bin (a transposed tensor,
a slice at a storage offset, two tensors sharing a storage, a strided 3-D view, a stride-0 broadcast), torch_module.bin (a module's
state_dict, with the _metadata that torch sets), torch_parameter.bin (an nn.Parameter), torch_cuda.bin (storages
tagged cuda:0 and mps, saved on a CPU machine). Files that must be refused, each for one reason:
torch_legacy.bin (the pre-zip format), torch_forbidden.bin (a pickle naming os.system), torch_bigendian.bin,
torch_deflated.bin, torch_missing_storage.bin, torch_int64_range.bin (an int64 outside Int32), torch_not_dict.bin
(a list of tensors).

In the AlbertMoE tests' fixtures: reference_pytorch/, a causal model directory holding config.json and the
pytorch_model.bin that torch.save writes for the reference model's state_dict() (the parameters of the
clm_rope_causal parity fixture), and expected.safetensors with the reference's logits for a few inputs.
"""
import collections, json, os, sys, zipfile
import torch
from safetensors.torch import load_file, save_file

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/LayersTests/Fixtures"
model_out = sys.argv[2] if len(sys.argv) > 2 else "Tests/AlbertMoETests/Fixtures"
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
expected = {}


def save(name, state, **kwargs):
    path = os.path.join(out, name)
    torch.save(state, path, **kwargs)
    return path


def record(name, state):
    expected[name] = {
        k: {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
            "values": t.detach().to(torch.float64 if t.is_floating_point() else torch.int64).flatten().tolist()}
        for k, t in state.items()}


def rewrite(source, target, change):
    """Copies an archive entry by entry through change(name, data) -> (name, data, compression) or None."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            result = change(info.filename, zin.read(info.filename))
            if result is not None:
                zout.writestr(zipfile.ZipInfo(result[0], date_time=(1980, 1, 1, 0, 0, 0)), result[1], compress_type=result[2])


values = torch.arange(12, dtype=torch.float64).reshape(3, 4) * 0.5 - 3
dtypes = collections.OrderedDict()
dtypes["f32"] = torch.randn(3, 4)
dtypes["f16"] = values.to(torch.float16)
dtypes["bf16"] = values.to(torch.bfloat16)
dtypes["f64"] = torch.randn(2, 3, dtype=torch.float64)
dtypes["i64"] = torch.tensor([[1, -2, 3]], dtype=torch.int64)
dtypes["i32"] = torch.tensor([7, -8], dtype=torch.int32)
dtypes["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
dtypes["bool"] = torch.tensor([True, False, True])
dtypes["scalar"] = torch.tensor(2.5)
dtypes["empty"] = torch.zeros(0, 5)
save("torch_dtypes.bin", dtypes)
record("torch_dtypes.bin", dtypes)

base = torch.randn(6, 5)
cube = torch.randn(4, 3, 6)
views = collections.OrderedDict()
views["transposed"] = base.t()                   # non-contiguous, strides (1, 5)
views["offset"] = base[2:4]                      # storage offset 10
views["shared_a"] = base[0]                      # the same storage as the two above
views["shared_b"] = base[5, 1:]
views["strided"] = cube.permute(2, 0, 1)[::2, :, 1:]
views["halves"] = torch.randn(3, 8).to(torch.float16)[:, ::3]
views["expanded"] = torch.randn(3).expand(4, 3)      # stride 0
save("torch_views.bin", views)
record("torch_views.bin", views)

module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
module_state = module.state_dict()
save("torch_module.bin", module_state)
record("torch_module.bin", module_state)

parameter = {"weight": torch.nn.Parameter(torch.randn(2, 3)), "frozen": torch.nn.Parameter(torch.randn(3), requires_grad=False)}
save("torch_parameter.bin", parameter)
record("torch_parameter.bin", parameter)

# Storages tagged as saved on a GPU: torch.save asks location_tag where each storage lives.
original_tag = torch.serialization.location_tag
tags = iter(["cuda:0", "mps", "cuda"])
torch.serialization.location_tag = lambda storage: next(tags)
cuda = collections.OrderedDict([("on_cuda0", torch.randn(2, 2)), ("on_mps", torch.randn(3)), ("on_cuda", torch.randn(1, 2))])
save("torch_cuda.bin", cuda)
torch.serialization.location_tag = original_tag
record("torch_cuda.bin", cuda)

small = collections.OrderedDict([("a", torch.randn(2, 3)), ("b", torch.randn(4))])
save("torch_legacy.bin", small, _use_new_zipfile_serialization=False)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


save("torch_forbidden.bin", {"a": torch.randn(2), "evil": Exploit()})
save("torch_int64_range.bin", {"ids": torch.tensor([1, 2 ** 40], dtype=torch.int64)})
save("torch_not_dict.bin", [torch.randn(2)])

good = save("torch_small.bin", small)
record("torch_small.bin", small)
rewrite(good, os.path.join(out, "torch_bigendian.bin"),
        lambda n, d: (n, b"big" if n.endswith("/byteorder") else d, zipfile.ZIP_STORED))
rewrite(good, os.path.join(out, "torch_deflated.bin"),
        lambda n, d: (n, d, zipfile.ZIP_DEFLATED if n.endswith("/data/1") else zipfile.ZIP_STORED))
rewrite(good, os.path.join(out, "torch_missing_storage.bin"),
        lambda n, d: None if n.endswith("/data/1") else (n, d, zipfile.ZIP_STORED))

with open(os.path.join(out, "torch_expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
    f.write("\n")
print("wrote", sorted(n for n in os.listdir(out) if n.startswith("torch_")))

# A reference model's own checkpoint, as the Python package saves it (torch.save(model.state_dict(), ...)).
ref_dir = os.environ.get("REFERENCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference"))
sys.path.insert(0, ref_dir)
import albertmoe_ref as R

parity = load_file(os.path.join(model_out, "clm_rope_causal.safetensors"))
from safetensors import safe_open
with safe_open(os.path.join(model_out, "clm_rope_causal.safetensors"), "pt") as f:
    config_keys = json.loads(f.metadata()["config"])
config = R.Config(**{k: v for k, v in config_keys.items() if k in R.Config.__dataclass_fields__})
model = R.AlbertForCausalLM(config, causal=True)
model.load_state_dict({k[len("param."):]: v for k, v in parity.items() if k.startswith("param.")}, strict=True)
model.eval()
directory = os.path.join(model_out, "reference_pytorch")
os.makedirs(directory, exist_ok=True)
torch.save(model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump({**config_keys, "architectures": ["AlbertForCausalLM"], "model_type": "albert_moe"}, f, indent=2)
    f.write("\n")
ids = torch.tensor([[5, 9, 12, 7, 30, 2, 64, 100], [1, 2, 3, 4, 5, 6, 7, 8]])
with torch.no_grad():
    logits = model(ids)["logits"]
save_file({"input_ids": ids, "logits": logits.contiguous()}, os.path.join(directory, "expected.safetensors"))
print("wrote", directory, sorted(os.listdir(directory)))
