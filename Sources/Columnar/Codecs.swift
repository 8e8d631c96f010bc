import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The block compressions of Parquet pages and Arrow record-batch buffers.
enum Codec: Equatable {
    case none, snappy, gzip, zstd, lz4Raw, lz4Frame

    var name: String {
        switch self {
        case .none: return "UNCOMPRESSED"
        case .snappy: return "SNAPPY"
        case .gzip: return "GZIP"
        case .zstd: return "ZSTD"
        case .lz4Raw: return "LZ4_RAW"
        case .lz4Frame: return "LZ4_FRAME"
        }
    }

    /// The most bytes `compressed` bytes can decompress to: a stated size above it is a damaged file, refused
    /// before anything is allocated.
    func largestOutput(compressed: Int) -> Int {
        switch self {
        case .none: return compressed
        case .snappy: return compressed.multipliedReportingOverflow(by: 32).partialValue + 64
        case .gzip: return compressed.multipliedReportingOverflow(by: 1032).partialValue + 1024
        case .zstd: return compressed.multipliedReportingOverflow(by: 32768).partialValue + (1 << 17)
        case .lz4Raw, .lz4Frame: return compressed.multipliedReportingOverflow(by: 256).partialValue + 64
        }
    }

    /// Decompresses `input[range]` into exactly `size` bytes; throws a `Malformed` for damaged data, a size
    /// that does not match, or a codec library that cannot be loaded.
    func decompress(_ input: [UInt8], _ range: Range<Int>, size: Int) throws -> [UInt8] {
        guard size >= 0, size <= largestOutput(compressed: range.count) else {
            throw Malformed("\(name) data of \(range.count) bytes cannot hold the \(size) bytes it claims")
        }
        if self == .none {
            guard range.count == size else {
                throw Malformed("an uncompressed buffer of \(range.count) bytes claims to hold \(size)")
            }
            return Array(input[range])
        }
        if size == 0 { return [] }
        guard !range.isEmpty else { throw Malformed("empty \(name) data where \(size) bytes belong") }
        var problem: String? = nil
        let output = [UInt8](unsafeUninitializedCapacity: size) { out, count in
            count = 0
            do {
                let produced: Int = try input.withUnsafeBytes { raw in
                    let source = UnsafeRawBufferPointer(rebasing: raw[range])
                    switch self {
                    case .none: return 0
                    case .snappy: return try snappyDecompress(source, into: out)
                    case .gzip: return try ZLib.library().inflate(source, into: out)
                    case .zstd: return try Zstd.library().decompress(source, into: out)
                    case .lz4Raw: return try LZ4.library().decompressRaw(source, into: out)
                    case .lz4Frame: return try LZ4.library().decompressFrame(source, into: out)
                    }
                }
                guard produced == size else {
                    throw Malformed("\(name) data decompressed to \(produced) bytes, not the \(size) stated")
                }
                count = produced
            } catch let error as Malformed {
                problem = error.reason
            } catch {
                problem = "\(error)"
            }
        }
        if let problem { throw Malformed(problem) }
        return output
    }
}

/// Snappy's raw format (as Parquet uses it): a varint length, then literals and back-references.
func snappyDecompress(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws -> Int {
    let damaged = Malformed("damaged SNAPPY data")
    var p = 0
    guard let length = readULEB128(input, &p, end: input.count, maxBytes: 5) else { throw damaged }
    guard length <= UInt64(out.count) else {
        throw Malformed("SNAPPY data claims \(length) bytes, more than the \(out.count) stated")
    }
    let total = Int(length)
    var o = 0
    while p < input.count {
        let tag = Int(input[p])
        p += 1
        switch tag & 3 {
        case 0:
            var n = tag >> 2
            if n >= 60 {
                let extra = n - 59
                guard p + extra <= input.count else { throw damaged }
                n = 0
                for i in 0..<extra { n |= Int(input[p + i]) << (8 * i) }
                p += extra
            }
            n += 1
            guard n <= input.count - p, n <= total - o else { throw damaged }
            for i in 0..<n { out[o + i] = input[p + i] }
            p += n
            o += n
        default:
            let n: Int
            let offset: Int
            if tag & 3 == 1 {
                guard p < input.count else { throw damaged }
                n = ((tag >> 2) & 7) + 4
                offset = (tag >> 5) << 8 | Int(input[p])
                p += 1
            } else if tag & 3 == 2 {
                guard p + 2 <= input.count else { throw damaged }
                n = (tag >> 2) + 1
                offset = Int(input[p]) | Int(input[p + 1]) << 8
                p += 2
            } else {
                guard p + 4 <= input.count else { throw damaged }
                n = (tag >> 2) + 1
                offset = Int(input[p]) | Int(input[p + 1]) << 8 | Int(input[p + 2]) << 16 | Int(input[p + 3]) << 24
                p += 4
            }
            guard offset > 0, offset <= o, n <= total - o else { throw damaged }
            for i in 0..<n { out[o + i] = out[o - offset + i] }
            o += n
        }
    }
    guard o == total else { throw damaged }
    return total
}

/// A shared library opened with dlopen, so that the package builds and runs without it until a file needs it.
struct SharedLibrary: @unchecked Sendable {
    let name: String
    private let handle: UnsafeMutableRawPointer

    /// Opens `name`, or says why it cannot be loaded (dlerror's message).
    static func open(_ name: String) -> Result<SharedLibrary, Malformed> {
        guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
            let message = dlerror().map { String(cString: $0) } ?? "not found"
            return .failure(Malformed("cannot load \(name) (\(message))"))
        }
        return .success(SharedLibrary(name: name, handle: handle))
    }

    func symbol<T>(_ symbol: String, as type: T.Type) throws -> T {
        guard let pointer = dlsym(handle, symbol) else {
            throw Malformed("\(name) has no function \(symbol)")
        }
        return unsafeBitCast(pointer, to: type)
    }
}

/// What a codec needs, loaded once: the error says which library a file's compression needs.
func loadCodecLibrary<T>(_ library: String, codec: String, _ make: (SharedLibrary) throws -> T) -> Result<T, Malformed> {
    switch SharedLibrary.open(library) {
    case let .failure(error):
        return .failure(Malformed("\(codec) compression needs \(library), which is not available: \(error.reason)"))
    case let .success(lib):
        do { return .success(try make(lib)) } catch let error as Malformed { return .failure(error) } catch {
            return .failure(Malformed("\(error)"))
        }
    }
}

/// libzstd's one-shot decompression.
struct Zstd: @unchecked Sendable {
    typealias Decompress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    typealias ErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?
    let decompressFunction: Decompress
    let isError: IsError
    let errorName: ErrorName

    static let loaded = loadCodecLibrary("libzstd.so.1", codec: "ZSTD") { lib in
        Zstd(decompressFunction: try lib.symbol("ZSTD_decompress", as: Decompress.self),
             isError: try lib.symbol("ZSTD_isError", as: IsError.self),
             errorName: try lib.symbol("ZSTD_getErrorName", as: ErrorName.self))
    }

    static func library() throws -> Zstd { try loaded.get() }

    func decompress(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws -> Int {
        let result = decompressFunction(out.baseAddress, out.count, input.baseAddress, input.count)
        if isError(result) != 0 {
            throw Malformed("damaged ZSTD data (\(errorName(result).map { String(cString: $0) } ?? "error"))")
        }
        return result
    }
}

/// zlib's inflate, for gzip (and zlib) streams; the stream structure is laid out by hand (64-bit Linux).
struct ZLib: @unchecked Sendable {
    typealias Version = @convention(c) () -> UnsafePointer<CChar>?
    typealias InflateInit2 = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?, Int32) -> Int32
    typealias Inflate = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32
    typealias InflateEnd = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    let version: Version
    let inflateInit2: InflateInit2
    let inflateFunction: Inflate
    let inflateReset: InflateEnd
    let inflateEnd: InflateEnd

    static let loaded = loadCodecLibrary("libz.so.1", codec: "GZIP") { lib in
        ZLib(version: try lib.symbol("zlibVersion", as: Version.self),
             inflateInit2: try lib.symbol("inflateInit2_", as: InflateInit2.self),
             inflateFunction: try lib.symbol("inflate", as: Inflate.self),
             inflateReset: try lib.symbol("inflateReset", as: InflateEnd.self),
             inflateEnd: try lib.symbol("inflateEnd", as: InflateEnd.self))
    }

    static func library() throws -> ZLib { try loaded.get() }

    // z_stream on LP64: next_in 0, avail_in 8, total_in 16, next_out 24, avail_out 32, total_out 40, msg 48,
    // state 56, zalloc 64, zfree 72, opaque 80, data_type 88, adler 96, reserved 104.
    private static let streamSize = 112

    /// Inflates gzip members (or a zlib stream) one after another until the input is used up.
    func inflate(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws -> Int {
        guard MemoryLayout<Int>.size == 8 else { throw Malformed("GZIP decompression needs a 64-bit platform") }
        let stream = UnsafeMutableRawPointer.allocate(byteCount: Self.streamSize, alignment: 8)
        defer { stream.deallocate() }
        stream.initializeMemory(as: UInt8.self, repeating: 0, count: Self.streamSize)
        guard inflateInit2(stream, 15 + 32, version(), Int32(Self.streamSize)) == 0 else {
            throw Malformed("zlib's inflateInit2 failed")
        }
        defer { _ = inflateEnd(stream) }
        guard let inBase = input.baseAddress, let outBase = out.baseAddress else { throw Malformed("empty GZIP data") }
        guard input.count <= Int(UInt32.max), out.count <= Int(UInt32.max) else { throw Malformed("GZIP data too large") }
        stream.storeBytes(of: inBase, toByteOffset: 0, as: UnsafeRawPointer.self)
        stream.storeBytes(of: UInt32(input.count), toByteOffset: 8, as: UInt32.self)
        stream.storeBytes(of: UnsafeMutableRawPointer(outBase), toByteOffset: 24, as: UnsafeMutableRawPointer.self)
        stream.storeBytes(of: UInt32(out.count), toByteOffset: 32, as: UInt32.self)
        while true {
            let result = inflateFunction(stream, 4)  // Z_FINISH
            let availIn = Int(stream.load(fromByteOffset: 8, as: UInt32.self))
            if result == 1 {  // Z_STREAM_END
                guard availIn > 0 else { break }
                guard inflateReset(stream) == 0 else { throw Malformed("damaged GZIP data") }
                continue
            }
            let message = stream.load(fromByteOffset: 48, as: UnsafePointer<CChar>?.self).map { String(cString: $0) }
            throw Malformed("damaged GZIP data (\(message ?? (result == -5 ? "more output than stated or truncated input" : "zlib error \(result)")))")
        }
        return out.count - Int(stream.load(fromByteOffset: 32, as: UInt32.self))
    }
}

/// liblz4: raw blocks (Parquet's LZ4_RAW) and frames (Arrow's LZ4_FRAME).
struct LZ4: @unchecked Sendable {
    typealias DecompressSafe = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    typealias CreateContext = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> Int
    typealias FreeContext = @convention(c) (OpaquePointer?) -> Int
    typealias DecompressFrame = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?,
                                                UnsafeRawPointer?, UnsafeMutablePointer<Int>?, UnsafeRawPointer?) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    let decompressSafe: DecompressSafe
    let createContext: CreateContext
    let freeContext: FreeContext
    let decompressFrame: DecompressFrame
    let isError: IsError

    static let loaded = loadCodecLibrary("liblz4.so.1", codec: "LZ4") { lib in
        LZ4(decompressSafe: try lib.symbol("LZ4_decompress_safe", as: DecompressSafe.self),
            createContext: try lib.symbol("LZ4F_createDecompressionContext", as: CreateContext.self),
            freeContext: try lib.symbol("LZ4F_freeDecompressionContext", as: FreeContext.self),
            decompressFrame: try lib.symbol("LZ4F_decompress", as: DecompressFrame.self),
            isError: try lib.symbol("LZ4F_isError", as: IsError.self))
    }

    static func library() throws -> LZ4 { try loaded.get() }

    func decompressRaw(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws -> Int {
        guard input.count <= Int(Int32.max), out.count <= Int(Int32.max) else { throw Malformed("LZ4 data too large") }
        let result = decompressSafe(input.baseAddress, out.baseAddress, Int32(input.count), Int32(out.count))
        guard result >= 0 else { throw Malformed("damaged LZ4 data") }
        return Int(result)
    }

    /// Decompresses concatenated LZ4 frames.
    func decompressFrame(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws -> Int {
        var context: OpaquePointer? = nil
        guard isError(createContext(&context, 100)) == 0, let context else { throw Malformed("cannot create an LZ4 context") }
        defer { _ = freeContext(context) }
        guard let inBase = input.baseAddress, let outBase = out.baseAddress else { throw Malformed("empty LZ4 data") }
        var consumed = 0
        var produced = 0
        while consumed < input.count {
            var sourceSize = input.count - consumed
            var destinationSize = out.count - produced
            let hint = decompressFrame(context, UnsafeMutableRawPointer(outBase + produced), &destinationSize, inBase + consumed,
                                       &sourceSize, nil)
            guard isError(hint) == 0 else { throw Malformed("damaged LZ4 frame data") }
            consumed += sourceSize
            produced += destinationSize
            if sourceSize == 0 && destinationSize == 0 {
                throw Malformed(produced == out.count ? "LZ4 data holds more than the size stated" : "truncated LZ4 frame data")
            }
        }
        return produced
    }
}
