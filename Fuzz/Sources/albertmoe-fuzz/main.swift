import CLibFuzzer
import Foundation

// Chooses the harness, then hands the command line (libFuzzer's flags and corpus folders) to libFuzzer.
let name = ProcessInfo.processInfo.environment["FUZZ_HARNESS"] ?? ""
guard let chosen = harnesses[name] else {
    FileHandle.standardError.write(Data("FUZZ_HARNESS must name one of: \(harnesses.keys.sorted().joined(separator: ", ")) (got '\(name)')\n".utf8))
    exit(2)
}
/// The harness of this process.
nonisolated(unsafe) var harness: Harness = chosen
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in
    harness(start.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
})
