import Foundation

/// What a command run by the tests printed, and how it exited.
struct CommandResult { let status: Int32; let stdout: String; let stderr: String }

/// Runs a built executable of the package as a user would: `stdin` on its standard input, standard error through a
/// file (so that a long log cannot fill a pipe and block the process), in `directory` when given.
func runCommand(_ executable: String, _ args: [String], environment: [String: String] = offlineEnvironment(),
                directory: URL? = nil, stdin: String = "") throws -> CommandResult {
    let process = Process()
    process.executableURL = Bundle.main.bundleURL.appendingPathComponent(executable)
    process.arguments = args
    process.environment = environment
    if let directory { process.currentDirectoryURL = directory }
    let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errURL) }
    let (input, output) = (Pipe(), Pipe())
    process.standardInput = input
    process.standardOutput = output
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let err = try Data(contentsOf: errURL)
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: err, as: UTF8.self))
}
