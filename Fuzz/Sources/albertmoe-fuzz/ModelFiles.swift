import AlbertMoE
import Foundation

/// model.safetensors: the tensors, then the config that `--mode serve` would derive from them.
func fuzzSafetensors(_ data: Data) {
    expecting(AlbertMoEError.self) {
        let file = try SafetensorsFile.read(data, name: "fuzz.safetensors")
        touch(file.tensors)
        _ = try? ModelDirectory.referenceConfig(weights: file.floatTensors, sizes: ModelSizes(), file: URL(fileURLWithPath: "fuzz"))
    }
}

/// pytorch_model.bin: the zip archive and its restricted pickle, then the derived config.
func fuzzPyTorch(_ data: Data) {
    expecting(AlbertMoEError.self) {
        let tensors = try PyTorchFile.readAll(data, name: "fuzz.bin")
        touch(tensors)
        let floats = tensors.compactMapValues { value -> Tensor? in if case .float(let t) = value { return t } else { return nil } }
        _ = try? ModelDirectory.referenceConfig(weights: floats, sizes: ModelSizes(), file: URL(fileURLWithPath: "fuzz"))
    }
}

/// config.json: decoded and validated; a config that reads must read again, the same, from what it writes.
func fuzzConfig(_ data: Data) {
    expecting(AlbertMoEError.self) {
        let config = try AlbertMoEConfig.decode(data, source: "fuzz/config.json")
        let again = try AlbertMoEConfig.decode(try JSONEncoder().encode(config), source: "written config.json")
        precondition(again == config, "config.json does not read back as written")
    }
}

/// Reads every element of every tensor (a shape that does not match its storage would be read past its end).
private func touch(_ tensors: [String: SafetensorsValue]) {
    for value in tensors.values {
        switch value {
        case .float(let t): precondition(t.scalars.count == t.shape.reduce(1, *))
        case .int(let t): precondition(t.scalars.count == t.shape.reduce(1, *))
        }
    }
}
