import Foundation
import XCTest

/// The README's layout table against the sources: no target imports what its row forbids, and below the command
/// layer and the server nothing installs signal handlers, exits the process or prints.
final class LayoutTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Swift files of `target`, with their text.
    func sources(of target: String) throws -> [(String, String)] {
        let directory = root.appendingPathComponent("Sources/\(target)")
        guard let files = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        return try files.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.sorted().map {
            ("\(target)/\($0)", try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
        }
    }

    func imports(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ").filter { !$0.hasPrefix("@") }
            return words.count >= 2 && words[0] == "import" ? String(words[1]) : nil
        })
    }

    /// Rows of the layout table: the Swift targets named in backticks and the modules each may not import.
    func layoutRows() throws -> [(target: String, forbidden: Set<String>)] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try XCTUnwrap(readme.components(separatedBy: "\n## Layout\n").dropFirst().first)
            .components(separatedBy: "\n## ")[0]
        func names(_ cell: Substring) -> [String] {
            cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
        }
        let rows = section.split(separator: "\n").filter { $0.hasPrefix("| `") }.map { $0.split(separator: "|", omittingEmptySubsequences: false) }
        let targets = rows.compactMap { names($0[1]).first }
        return rows.compactMap { cells in
            guard cells.count >= 4, let target = names(cells[1]).first,
                  FileManager.default.fileExists(atPath: root.appendingPathComponent("Sources/\(target)").path),
                  !cells[1].contains("(C)") else { return nil }
            let rule = cells[3].trimmingCharacters(in: .whitespaces)
            let named = Set(names(cells[3]))
            return (target, rule.hasPrefix("any target") ? Set(targets).subtracting(named).subtracting([target]) : named)
        }
    }

    func testTargetsImportOnlyWhatTheLayoutAllows() throws {
        let rows = try layoutRows()
        XCTAssertEqual(Set(rows.map(\.target)), ["Tensors", "Layers", "Optimizers", "JSON", "Tokenizers", "Columnar", "Hub",
                                                  "AlbertMoE", "AlbertMoECommands", "AlbertMoEServer"])
        for (target, forbidden) in rows {
            XCTAssertFalse(forbidden.isEmpty, target)
            let files = try sources(of: target)
            XCTAssertFalse(files.isEmpty, target)
            for (file, text) in files {
                let wrong = imports(text).intersection(forbidden)
                XCTAssertTrue(wrong.isEmpty, "\(file) imports \(wrong.sorted()), which the README's layout forbids for \(target)")
            }
        }
    }

    /// The hub client reaches the network through AsyncHTTPClient alone: FoundationNetworking would make libcurl a
    /// load-time requirement of every executable.
    func testTheHubImportsOnlyFoundationAndAsyncHTTPClient() throws {
        for (file, text) in try sources(of: "Hub") {
            XCTAssertTrue(imports(text).isSubset(of: ["Foundation", "AsyncHTTPClient"]), "\(file) imports \(imports(text).sorted())")
        }
        let targets = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Sources").path)
        for target in targets {
            for (file, text) in try sources(of: target) {
                XCTAssertFalse(imports(text).contains("FoundationNetworking"), "\(file) imports FoundationNetworking")
            }
        }
    }

    func testOnlyTheCommandLayerAndTheServerTouchTheProcess() throws {
        let calls = try NSRegularExpression(pattern: #"(?<![\w.])(print|exit|signal|sigaction|fputs)\("#)
        for target in ["Tensors", "Layers", "Optimizers", "JSON", "Tokenizers", "Columnar", "Hub", "AlbertMoE"] {
            for (file, text) in try sources(of: target) {
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = String(line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                    let found = calls.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil
                    XCTAssertFalse(found, "\(file):\(number + 1) touches the process: \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
    }
}
