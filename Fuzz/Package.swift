// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for every parser that a user's bytes reach, in one binary (the harness is chosen by
// FUZZ_HARNESS). A package of its own, so that the root package never builds with the fuzzer flags: `run.sh`
// builds it in release with `-sanitize=fuzzer,address` and `-enable-testing` (for `@testable import`).
// The executable's main runs libFuzzer's driver (LLVMFuzzerRunDriver), declared by CLibFuzzer.
let package = Package(
    name: "AlbertMoEFuzz",
    dependencies: [.package(name: "AlbertMoE", path: "..")],
    targets: [
        .executableTarget(
            name: "albertmoe-fuzz",
            dependencies: [
                .product(name: "AlbertMoE", package: "AlbertMoE"),
                .product(name: "Tokenizers", package: "AlbertMoE"),
                .product(name: "Columnar", package: "AlbertMoE"),
                .product(name: "AlbertMoEServer", package: "AlbertMoE"),
                "CLibFuzzer",
            ],
            // lld: gold fails on this sanitized link.
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]),
        .target(name: "CLibFuzzer"),
    ],
    swiftLanguageModes: [.v6]
)
