import Foundation
@testable import AlbertMoE
@testable import Columnar

/// A local data file: the first byte picks the format (text, JSON lines, CSV, TSV), the read size (to exercise
/// lines split across reads) and whether it is read as a corpus or as sentence pairs; the rest is the file.
func fuzzTextCorpus(_ data: Data) {
    let (options, contents) = choice(data)
    let ext = ["txt", "jsonl", "csv", "tsv"][Int(options & 3)]
    let folder = writeScratch([("data.\(ext)", contents)])
    let file = folder.appendingPathComponent("data.\(ext)")
    expecting(AlbertMoEError.self) {
        if options & 0x10 != 0 {
            _ = try SentencePairs.read(file)
            return
        }
        var corpus = try TextCorpus(path: file)
        corpus.readChunkSize = [1 << 20, 7, 64, 4096][Int(options >> 2 & 3)]
        for example in try corpus.readAll(maxSamples: 100) { precondition(!isBlank(example.text)) }
    }
}

/// A Parquet file read from memory: the first rows of each of its first columns.
func fuzzParquet(_ data: Data) {
    expecting(ColumnarError.self) {
        try readFirstRows(try ParquetFile(RandomAccessFile(path: "fuzz.parquet", contents: [UInt8](data))))
    }
}

/// An Arrow IPC file or stream read from memory: the first rows of each of its first columns.
func fuzzArrow(_ data: Data) {
    expecting(ColumnarError.self) {
        try readFirstRows(try ArrowFile(RandomAccessFile(path: "fuzz.arrow", contents: [UInt8](data))))
    }
}

private func readFirstRows(_ source: any TextColumnSource) throws {
    for column in source.columns.prefix(4) {
        var rows = 0
        try source.forEachString(column: column) { _, _ in
            rows += 1
            return rows < 64
        }
    }
}

/// A `save_to_disk` directory: the first byte picks which JSON file the rest is (a Dataset's state.json, or a
/// DatasetDict's dataset_dict.json or its train split's state.json); the data files it may name exist.
func fuzzSaveToDisk(_ data: Data) {
    let (options, contents) = choice(data)
    let dict = Data(#"{"splits": ["train", "test"]}"#.utf8)
    let state = Data(#"{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}"#.utf8)
    let files: [(String, Data)]
    switch options % 3 {
    case 0: files = [("state.json", contents), ("data-00000-of-00001.arrow", Data())]
    case 1: files = [("dataset_dict.json", contents), ("train/state.json", state), ("train/data-00000-of-00001.arrow", Data())]
    default: files = [("dataset_dict.json", dict), ("train/state.json", contents), ("train/data-00000-of-00001.arrow", Data())]
    }
    let folder = writeScratch(files)
    expecting(ColumnarError.self) {
        for url in try SavedDataset.dataFiles(in: folder, split: "train") ?? [] {
            precondition(url.path.hasPrefix(folder.path) && FileManager.default.fileExists(atPath: url.path),
                         "a data file outside the dataset's directory, or none: \(url.path)")
        }
    }
}
