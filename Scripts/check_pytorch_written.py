"""Checks that PyTorch checkpoints written by AlbertMoE (Swift) load in PyTorch, with weights_only=True and without,
and hold exactly the tensors of a safetensors file beside them.

Usage: python Scripts/check_pytorch_written.py EXPECTED.safetensors FILE.bin [FILE.bin ...]
  e.g. python Scripts/check_pytorch_written.py Tests/LayersTests/Fixtures/swift_written.safetensors \
         Tests/LayersTests/Fixtures/swift_written.bin Tests/LayersTests/Fixtures/swift_written_zip64.bin
Needs: pip install torch safetensors
"""
import sys, zipfile
import torch
from safetensors.torch import load_file


def check(path, expected):
    for weights_only in (True, False):
        state = torch.load(path, weights_only=weights_only, map_location="cpu")
        assert list(state) == sorted(expected), f"{path}: keys {list(state)} are not {sorted(expected)}"
        for name, want in expected.items():
            got = state[name]
            assert got.dtype == want.dtype and got.shape == want.shape, f"{path}: {name} is {got.dtype} {tuple(got.shape)}"
            assert torch.equal(got, want), f"{path}: {name} differs"
    raw = open(path, "rb").read()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, f"{path}: CRC mismatch"
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED, f"{path}: {info.filename} is compressed"
            h = info.header_offset
            start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + int.from_bytes(raw[h + 28:h + 30], "little")
            assert start % 64 == 0, f"{path}: {info.filename} starts at byte {start}, not a multiple of 64"
        assert z.read(z.namelist()[0].split("/")[0] + "/byteorder") == b"little"
    print(f"{path}: torch.load (weights_only=True and False) gives the {len(expected)} tensors of the safetensors file; entries stored, 64-byte aligned")


expected = load_file(sys.argv[1])
for path in sys.argv[2:]:
    check(path, expected)
