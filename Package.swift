// swift-tools-version:6.0
import PackageDescription

// The kernels are always compiled optimised (even in debug builds), so that tests stay fast.
// Code specific to an instruction set is marked per function (`__attribute__((target(...)))`)
// and chosen at run time, so the package builds for any x86_64 or aarch64 CPU.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno", "-fno-trapping-math"])]

let package = Package(
    name: "AlbertMoE",
    products: [
        .library(name: "Tensors", targets: ["Tensors"]),
        .executable(name: "kernel-bench", targets: ["KernelBench"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
    ],
    targets: [
        .target(name: "CKernels", cSettings: kernelFlags, linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("m")]),
        .target(name: "Tensors", dependencies: ["CKernels"]),
        .executableTarget(name: "KernelBench", dependencies: ["Tensors", "CKernels"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "CKernels"]),
        .target(name: "Tokenizers"),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
