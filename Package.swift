// swift-tools-version:6.0
import PackageDescription

// The kernels are always compiled optimised (even in debug builds), so that tests stay fast.
// Code specific to an instruction set is marked per function (`__attribute__((target(...)))`)
// and chosen at run time, so the package builds for any x86_64 or aarch64 CPU.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno", "-fno-trapping-math"])]

let package = Package(
    name: "AlbertMoE",
    products: [
        .library(name: "AlbertMoE", targets: ["AlbertMoE"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .executable(name: "kernel-bench", targets: ["KernelBench"]),
        .executable(name: "tokenizer-bench", targets: ["TokenizerBench"]),
        .executable(name: "albertmoe", targets: ["AlbertMoECLI"]),
        .executable(name: "train-clm", targets: ["TrainCLM"]),
        .executable(name: "train-mlm", targets: ["TrainMLM"]),
        .library(name: "AlbertMoECommands", targets: ["AlbertMoECommands"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "AlbertMoEServer", targets: ["AlbertMoEServer"]),
        .library(name: "Columnar", targets: ["Columnar"]),
        .library(name: "Hub", targets: ["Hub"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(name: "CKernels", cSettings: kernelFlags, linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("m")]),
        .target(name: "Tensors", dependencies: ["CKernels"]),
        .target(name: "Layers", dependencies: ["Tensors"]),
        .target(name: "Optimizers", dependencies: ["Tensors", "CKernels"]),
        .target(name: "AlbertMoE", dependencies: ["Tensors", "Layers", "Optimizers", "Tokenizers", "JSON", "Columnar"]),
        .target(name: "Hub", dependencies: [.product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .target(name: "AlbertMoECommands", dependencies: [
            "AlbertMoE", "Tokenizers", "Hub", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "AlbertMoEServer", dependencies: [
            "AlbertMoE", "Tokenizers", .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .executableTarget(name: "AlbertMoECLI", dependencies: [
            "AlbertMoECommands", "AlbertMoEServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        .executableTarget(name: "TrainCLM", dependencies: ["AlbertMoECommands"]),
        .executableTarget(name: "TrainMLM", dependencies: ["AlbertMoECommands"]),
        .executableTarget(name: "KernelBench", dependencies: ["Tensors", "CKernels"]),
        .executableTarget(name: "TokenizerBench", dependencies: ["Tokenizers"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "CKernels"]),
        .testTarget(name: "AlbertMoECLITests", dependencies: ["AlbertMoECLI", "TrainCLM", "TrainMLM", "AlbertMoECommands", "AlbertMoE", "Tokenizers"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers"], resources: [.copy("Fixtures")]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "Layers"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AlbertMoETests", dependencies: ["AlbertMoE", "Tokenizers", "JSON"], resources: [.copy("Fixtures")]),
        .target(name: "JSON"),
        .target(name: "Columnar"),
        .testTarget(name: "ColumnarTests", dependencies: ["Columnar", "Tensors"], resources: [.copy("Fixtures")]),
        .target(name: "Tokenizers", dependencies: ["JSON"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "JSON"], resources: [.copy("Fixtures")]),
        .testTarget(name: "AlbertMoEServerTests", dependencies: ["AlbertMoEServer"]),
        .testTarget(name: "HubTests", dependencies: ["Hub", "Tensors", .product(name: "Hummingbird", package: "hummingbird")],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
