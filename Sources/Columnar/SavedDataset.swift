import Foundation

/// A directory written by the Python `datasets` library's `save_to_disk`: a Dataset (state.json listing its
/// `_data_files`, Arrow IPC streams, beside dataset_info.json) or a DatasetDict (dataset_dict.json listing its
/// splits, each a Dataset directory of its own).
public enum SavedDataset {
    /// The Arrow files of `directory` in order: its own for a Dataset, those of `split` for a DatasetDict; nil
    /// when the directory is neither. Throws a `ColumnarError` for a damaged state file or a split that is not there.
    public static func dataFiles(in directory: URL, split: String) throws -> [URL]? {
        let manager = FileManager.default
        let dictFile = directory.appendingPathComponent("dataset_dict.json")
        if manager.fileExists(atPath: dictFile.path) {
            let splits = try jsonObject(dictFile)["splits"] as? [String]
            guard let splits else { throw ColumnarError(path: dictFile.path, reason: "no \"splits\" list of names") }
            guard splits.contains(split) else {
                throw ColumnarError(path: directory.path, reason: "no split '\(split)' in this DatasetDict (splits: \(splits.map { "'\($0)'" }.joined(separator: ", ")))")
            }
            let splitDirectory = directory.appendingPathComponent(split)
            guard let files = try dataFiles(ofDataset: splitDirectory) else {
                throw ColumnarError(path: splitDirectory.path, reason: "the split's directory has no state.json")
            }
            return files
        }
        return try dataFiles(ofDataset: directory)
    }

    private static func dataFiles(ofDataset directory: URL) throws -> [URL]? {
        let stateFile = directory.appendingPathComponent("state.json")
        guard FileManager.default.fileExists(atPath: stateFile.path) else { return nil }
        guard let entries = try jsonObject(stateFile)["_data_files"] as? [Any] else {
            throw ColumnarError(path: stateFile.path, reason: "no \"_data_files\" list")
        }
        let files = try entries.map { entry -> URL in
            guard let name = (entry as? [String: Any])?["filename"] as? String, !name.isEmpty,
                  !name.split(separator: "/").contains("..") else {
                throw ColumnarError(path: stateFile.path, reason: "a \"_data_files\" entry without a file name in the directory")
            }
            let url = directory.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw ColumnarError(path: url.path, reason: "listed in \(stateFile.lastPathComponent), but not a file there")
            }
            return url
        }
        guard !files.isEmpty else { throw ColumnarError(path: stateFile.path, reason: "\"_data_files\" lists no file") }
        return files
    }

    private static func jsonObject(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ColumnarError(path: url.path, reason: "cannot read the file")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ColumnarError(path: url.path, reason: "not a JSON object")
        }
        return object
    }
}
