import Foundation
import XCTest
@testable import Layers

final class PyTorchFileTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return dir.appendingPathComponent(name)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pytorch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// torch_expected.json: file -> tensor -> shape, dtype, row-major values.
    func expected() throws -> [String: [String: [String: Any]]] {
        let data = try Data(contentsOf: try fixture("torch_expected.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: [String: Any]]])
    }

    func testReadsEveryFixtureAsTorchSavedIt() throws {
        let files = try expected()
        XCTAssertEqual(files.count, 6)
        for (file, tensors) in files {
            let read = try PyTorchFile.readAll(try fixture(file))
            XCTAssertEqual(Set(read.keys), Set(tensors.keys), file)
            for (name, info) in tensors {
                let shape = try XCTUnwrap(info["shape"] as? [Int])
                let values = try XCTUnwrap(info["values"] as? [NSNumber])
                let dtype = try XCTUnwrap(info["dtype"] as? String)
                switch read[name] {
                case .float(let t)?:
                    XCTAssertTrue(["float32", "float16", "bfloat16", "float64"].contains(dtype), "\(file) \(name)")
                    XCTAssertEqual(t.shape, shape, "\(file) \(name)")
                    XCTAssertEqual(t.scalars, values.map { Float($0.doubleValue) }, "\(file) \(name)")
                case .int(let t)?:
                    XCTAssertFalse(dtype.hasPrefix("float") || dtype.hasPrefix("bfloat"), "\(file) \(name)")
                    XCTAssertEqual(t.shape, shape, "\(file) \(name)")
                    XCTAssertEqual(t.scalars, values.map { Int32($0.intValue) }, "\(file) \(name)")
                case nil: XCTFail("\(file): no \(name)")
                }
            }
        }
    }

    func testReadGivesFloatTensorsAndNamesIntegerOnes() throws {
        let views = try PyTorchFile.read(try fixture("torch_views.bin"))
        XCTAssertEqual(views["transposed"]?.shape, [5, 6])
        XCTAssertEqual(views["offset"]?.shape, [2, 5])
        XCTAssertThrowsError(try PyTorchFile.read(try fixture("torch_dtypes.bin"))) { e in
            XCTAssertTrue("\(e)".contains("torch_dtypes.bin") && "\(e)".contains("bool, i32, i64, u8"), "\(e)")
        }
    }

    func testRefusesWhatIsNotAStateDictNamingFileAndCause() throws {
        let cases = [
            ("torch_legacy.bin", "legacy PyTorch file"),
            ("torch_forbidden.bin", "forbidden global posix.system"),
            ("torch_bigendian.bin", "\"big\"-endian"),
            ("torch_deflated.bin", "entry \"torch_small/data/1\" is compressed (method 8, deflate)"),
            ("torch_missing_storage.bin", "storage 1 has no entry torch_small/data/1"),
            ("torch_int64_range.bin", "holds 1099511627776"),
            ("torch_not_dict.bin", "does not hold a state dict"),
            ("python_f32.safetensors", "does not begin as a zip archive"),
        ]
        for (file, fragment) in cases {
            XCTAssertThrowsError(try PyTorchFile.readAll(try fixture(file)), file) { e in
                XCTAssertTrue("\(e)".contains(file) && "\(e)".contains(fragment), "\(e)")
            }
        }
        XCTAssertThrowsError(try PyTorchFile.read(URL(fileURLWithPath: "/nonexistent/pytorch_model.bin"))) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/pytorch_model.bin") && "\(e)".contains("cannot read"), "\(e)")
        }
    }

    func testEveryTruncationIsAnError() throws {
        let data = try Data(contentsOf: try fixture("torch_small.bin"))
        XCTAssertNoThrow(try PyTorchFile.readAll(data))
        for length in 0..<data.count {
            XCTAssertThrowsError(try PyTorchFile.readAll(data.prefix(length), name: "cut.bin"), "\(length)") { e in
                XCTAssertTrue("\(e)".contains("cut.bin"), "\(e)")
            }
        }
    }

    /// A random state dict: float and int tensors of ranks 0 to 4, some with empty dimensions.
    func randomStateDict(_ g: inout SeededGenerator) -> ([String: Tensor], [String: IntTensor]) {
        var floats: [String: Tensor] = [:], ints: [String: IntTensor] = [:]
        let names = ["weight", "bias", "albert.embeddings.word_embeddings.weight", "ünïcode.名前", "x", "", "a/b", "0"]
        for _ in 0..<g.nextInt(below: 7) {
            let name = names[g.nextInt(below: names.count)] + String(g.nextInt(below: 100))
            let shape = (0..<g.nextInt(below: 5)).map { _ in g.nextInt(below: 10) == 0 ? 0 : 1 + g.nextInt(below: 5) }
            let count = shape.reduce(1, *)
            if g.nextInt(below: 4) == 0 {
                ints[name] = IntTensor((0..<count).map { _ in Int32(truncatingIfNeeded: g.next()) }, shape: shape)
                floats[name] = nil
            } else {
                let special: [Float] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
                floats[name] = Tensor((0..<count).map { _ in g.nextInt(below: 10) == 0 ? special[g.nextInt(below: special.count)] : g.nextNormal() }, shape: shape)
                ints[name] = nil
            }
        }
        return (floats, ints)
    }

    func testWriterRoundTripsRandomStateDicts() throws {
        let dir = try temporaryDirectory()
        var g = SeededGenerator(seed: 11)
        for round in 0..<150 {
            let (floats, ints) = randomStateDict(&g)
            let url = dir.appendingPathComponent("pytorch_model.bin")
            try PyTorchFile.write(floats, ints: ints, to: url, forceZip64: round % 3 == 0)
            let read = try PyTorchFile.readAll(url)
            XCTAssertEqual(Set(read.keys), Set(floats.keys).union(ints.keys), "round \(round)")
            for (name, t) in floats {
                guard case .float(let r)? = read[name] else { XCTFail("\(name) is not a float tensor"); continue }
                XCTAssertEqual(r.shape, t.shape)
                XCTAssertEqual(r.scalars.map(\.bitPattern), t.scalars.map(\.bitPattern), "round \(round) \(name)")
            }
            for (name, t) in ints { XCTAssertEqual(read[name].flatMap { if case .int(let r) = $0 { r } else { nil } }, t) }
            // The layout torch writes: every entry's data at a multiple of 64 bytes.
            let data = try Data(contentsOf: url)
            try data.withUnsafeBytes { bytes in
                let archive = try ZipArchive(bytes, path: url.path)
                XCTAssertEqual(archive.entries.first?.name, "pytorch_model/data.pkl")
                XCTAssertEqual(archive.entries.count, 5 + floats.count + ints.count)
                for e in archive.entries { XCTAssertEqual(e.offset % 64, 0, e.name) }
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["pytorch_model.bin"], "no temporary file left")
    }

    func testWriteIsAtomicAndNamesTheFile() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("m.bin")
        try PyTorchFile.write(["a": Tensor([1])], to: url)
        try PyTorchFile.write(["a": Tensor([2, 3])], to: url)
        XCTAssertEqual(try PyTorchFile.read(url)["a"]?.scalars, [2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.bin"])
        let nowhere = dir.appendingPathComponent("missing/dir/m.bin")
        XCTAssertThrowsError(try PyTorchFile.write(["a": Tensor([1])], to: nowhere)) { e in
            XCTAssertTrue("\(e)".contains("cannot write") && "\(e)".contains("missing/dir/m.bin"), "\(e)")
        }
        XCTAssertThrowsError(try PyTorchFile.write(["a": Tensor([1])], ints: ["a": IntTensor([Int32(1)])], to: url)) { e in
            XCTAssertEqual((e as? AlbertMoEError)?.field, "a")
        }
    }

    /// Names sharing one storage (tied weights) read as equal tensors; a pickle that names one storage so often
    /// that the tensors would outgrow it many times over is refused before anything is allocated.
    func testStorageRepeatedTooOftenIsRefused() throws {
        let n = 65536
        let storage = Data((0..<n).flatMap { i in withUnsafeBytes(of: Float(i).bitPattern.littleEndian) { Array($0) } })
        func archive(_ names: Int) throws -> Data {
            let entries = (0..<names).map { (name: "tied\($0)", key: "0", dtype: TorchDType.float32, shape: [n]) }
            var out = Data()
            try PyTorchFile.writeArchive("tied", pickle: PickleWriter.stateDict(entries), storages: [(key: "0", bytes: { storage })]) {
                out.append($0)
            }
            return out
        }
        let tied = try PyTorchFile.readAll(try archive(3), name: "tied.bin")
        XCTAssertEqual(tied.count, 3)
        for (_, value) in tied {
            guard case .float(let t) = value else { return XCTFail("not a float tensor") }
            XCTAssertEqual(t.scalars, (0..<n).map(Float.init))
        }
        XCTAssertThrowsError(try PyTorchFile.readAll(try archive(40), name: "tied.bin")) { e in
            XCTAssertTrue("\(e)".contains("tied.bin") && "\(e)".contains("repeat the storages"), "\(e)")
        }
    }

    /// The state dict of swift_written.bin, swift_written_zip64.bin and swift_written.safetensors, which
    /// Scripts/check_pytorch_written.py loads in PyTorch.
    func writtenStateDict() -> ([String: Tensor], [String: IntTensor]) {
        var g = SeededGenerator(seed: 3)
        return (["embeddings.weight": Tensor.normal([5, 4], generator: &g), "layer.bias": Tensor.normal([4], generator: &g),
                 "scalar": Tensor(scalar: -1.5), "empty": Tensor.zeros([0, 3])],
                ["position_ids": IntTensor([Int32(0), 1, 2, -7, Int32.max, Int32.min], shape: [1, 6])])
    }

    /// The writer's output is byte for byte the committed files that PyTorch was shown to load
    /// (set ALBERTMOE_UPDATE_FIXTURES=1 to rewrite them after a deliberate change).
    func testWriterOutputIsTheFileTorchLoads() throws {
        let (floats, ints) = writtenStateDict()
        let dir = try temporaryDirectory()
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let update = ProcessInfo.processInfo.environment["ALBERTMOE_UPDATE_FIXTURES"] == "1"
        for (file, zip64) in [("swift_written.bin", false), ("swift_written_zip64.bin", true)] {
            let url = dir.appendingPathComponent(file)
            try PyTorchFile.write(floats, ints: ints, to: url, forceZip64: zip64)
            if update { try Data(contentsOf: url).write(to: source.appendingPathComponent(file)) }
            XCTAssertEqual(try Data(contentsOf: url), try Data(contentsOf: try fixture(file)), file)
        }
        if update {
            try Safetensors.write(floats, ints: ints, to: source.appendingPathComponent("swift_written.safetensors"))
        }
        let safetensors = try SafetensorsFile.read(try fixture("swift_written.safetensors"))
        let read = try PyTorchFile.readAll(try fixture("swift_written_zip64.bin"))
        for (name, t) in safetensors.floatTensors {
            guard case .float(let r)? = read[name] else { XCTFail(name); continue }
            XCTAssertEqual(r.scalars, t.scalars, name)
        }
        XCTAssertEqual(read.count, safetensors.tensors.count)
    }

    /// Seeded damage to valid archives (flipped bits, bytes replaced, 2-, 4- and 8-byte fields set to huge or
    /// random values, cuts): every read is an error or a state dict, never a crash or a huge allocation.
    func testDamagedArchivesNeverCrash() throws {
        var g = SeededGenerator(seed: 21)
        var readable = 0, refused = 0
        for file in ["torch_views.bin", "torch_module.bin", "torch_dtypes.bin", "swift_written_zip64.bin"] {
            let good = try Data(contentsOf: try fixture(file))
            for _ in 0..<750 {
                let bad = mutate(good, &g)
                if (try? PyTorchFile.readAll(bad)) != nil { readable += 1 } else { refused += 1 }
            }
        }
        XCTAssertEqual(readable + refused, 3000)
        XCTAssertGreaterThan(refused, 1000)
    }

    /// The same damage inside the pickle, wrapped in a valid archive with the fixture's storages (so that the
    /// CRC holds and the unpickler and the tensor checks see it).
    func testDamagedPicklesNeverCrash() throws {
        var g = SeededGenerator(seed: 22)
        var readable = 0, refused = 0
        for file in ["torch_views.bin", "torch_module.bin", "torch_dtypes.bin", "torch_cuda.bin"] {
            let good = try Data(contentsOf: try fixture(file))
            let (pickle, storages) = try good.withUnsafeBytes { bytes -> (Data, [(key: String, bytes: () -> Data)]) in
                let archive = try ZipArchive(bytes, path: file)
                func data(_ e: ZipEntry) -> Data { Data(bytes[e.offset..<(e.offset + e.size)]) }
                let pickle = archive.entries.first { $0.name.hasSuffix("/data.pkl") }!
                let storages = archive.entries.filter { $0.name.contains("/data/") }.map { e in
                    let d = data(e)
                    return (key: String(e.name.split(separator: "/").last!), bytes: { d })
                }
                return (data(pickle), storages)
            }
            for _ in 0..<1000 {
                let bad = mutate(pickle, &g)
                var archive = Data()
                try PyTorchFile.writeArchive("fuzz", pickle: Array(bad), storages: storages) { archive.append($0) }
                if (try? PyTorchFile.readAll(archive)) != nil { readable += 1 } else { refused += 1 }
                // The unpickler alone, on the damaged bytes.
                _ = try? bad.withUnsafeBytes { try Unpickler.load($0, path: "fuzz") }
            }
        }
        XCTAssertEqual(readable + refused, 4000)
        XCTAssertGreaterThan(refused, 1000)
        XCTAssertGreaterThan(readable, 30)
    }

    func mutate(_ good: Data, _ g: inout SeededGenerator) -> Data {
        var bad = Array(good)
        for _ in 0..<(1 + g.nextInt(below: 3)) {
            guard !bad.isEmpty else { break }
            let i = g.nextInt(below: bad.count)
            switch g.nextInt(below: 7) {
            case 0: bad[i] ^= UInt8(1 << g.nextInt(below: 8))
            case 1: bad[i] = UInt8(g.nextInt(below: 256))
            case 2, 3:
                let width = [2, 4, 8][g.nextInt(below: 3)]
                let huge: [UInt8] = g.nextInt(below: 2) == 0 ? [UInt8](repeating: 0xFF, count: width)
                    : (0..<width).map { $0 == width - 1 ? 0x7F : UInt8(g.nextInt(below: 256)) }
                for k in 0..<width where i + k < bad.count { bad[i + k] = huge[k] }
            case 4: bad.removeSubrange(i..<min(bad.count, i + 1 + g.nextInt(below: 8)))
            case 5: bad.insert(UInt8(g.nextInt(below: 256)), at: i)
            default: bad.removeSubrange(i...)
            }
        }
        return Data(bad)
    }
}
