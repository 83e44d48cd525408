import Foundation

/// A safetensors file opened for reading: the Swift counterpart of the reference's
/// `safe_open(path, framework="np")`.
///
/// Opening maps the file and validates the whole header (see `SafeTensors` for the layout);
/// tensor data is converted only when asked for. Every error names the file and, where there is
/// one, the tensor. The object is immutable and may be shared between threads. As with any
/// mapping, the file must not be truncated while open (write a new file and rename instead, as
/// `SafeTensors.write` does).
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    /// The `__metadata__` map; empty when the file has none.
    public let metadata: [String: String]
    /// Header entries by tensor name.
    public let entries: [String: SafeTensors.TensorEntry]
    /// Tensor names in file order (sorted by data offset).
    public let names: [String]

    private let file: MappedFile
    /// File offset of the data buffer: 8 + header length.
    public let dataStart: Int

    public init(path: String) throws(CheckpointError) {
        let file = try MappedFile(path: path)
        guard file.size >= 8, let bytes = file.bytes else {
            throw .fileTooShort(path: path, size: file.size)
        }
        let declaredLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declaredLength <= UInt64(SafeTensors.maximumHeaderLength) else {
            throw .headerTooLarge(path: path, declared: declaredLength, limit: SafeTensors.maximumHeaderLength)
        }
        let headerLength = Int(declaredLength)
        guard headerLength <= file.size - 8 else {
            throw .headerPastEnd(path: path, declared: declaredLength, bytesAfterLength: file.size - 8)
        }
        let header = try SafeTensorsHeader(
            text: UnsafeRawBufferPointer(start: bytes + 8, count: headerLength), path: path)
        let dataStart = 8 + headerLength
        let dataLength = file.size - dataStart
        guard dataLength == header.dataLength else {
            throw .bufferLengthMismatch(path: path, lastTensor: header.entries.last?.name,
                                        expectedBytes: header.dataLength, foundBytes: dataLength)
        }

        self.path = path
        self.file = file
        self.dataStart = dataStart
        self.metadata = header.metadata
        self.names = header.entries.map(\.name)
        self.entries = Dictionary(uniqueKeysWithValues: header.entries.map { ($0.name, $0) })
    }

    /// The header entry of `name`.
    public func entry(_ name: String) throws(CheckpointError) -> SafeTensors.TensorEntry {
        guard let entry = entries[name] else { throw .tensorNotFound(path: path, tensor: name) }
        return entry
    }

    /// The tensor's values converted to Float32, in row-major order.
    public func floats(_ name: String) throws(CheckpointError) -> [Float] {
        let entry = try entry(name)
        let count = entry.elementCount
        var failure: CheckpointError?
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(CheckpointError) {
                if let base = buffer.baseAddress { try convert(entry, into: base) }
                initialized = count
            } catch {
                // The elements are plain Floats: leaving them uninitialised on failure is harmless.
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return values
    }

    /// Converts the tensor into `count` preallocated Float32 slots; `count` must equal the
    /// tensor's element count. Nothing is allocated: F32 data is copied straight out of the
    /// mapping, other dtypes are widened on the way.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws(CheckpointError) {
        let entry = try entry(name)
        guard count == entry.elementCount else {
            throw .elementCountMismatch(path: path, tensor: name, expected: entry.elementCount, found: count)
        }
        try convert(entry, into: destination)
    }

    /// Calls `body` with the tensor's raw little-endian bytes inside the mapping, for dtypes
    /// that have no Float conversion or for inspection. The pointer must not escape `body`.
    public func withRawBytes<Result>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        let entry = try entry(name)
        return try body(UnsafeRawBufferPointer(start: dataPointer(entry), count: entry.byteRange.count))
    }

    private func convert(_ entry: SafeTensors.TensorEntry, into destination: UnsafeMutablePointer<Float>) throws(CheckpointError) {
        guard entry.elementCount > 0 else { return }
        guard ElementDecoding.decode(entry.dtype, from: dataPointer(entry), count: entry.elementCount, into: destination) else {
            throw .unsupportedConversion(path: path, tensor: entry.name, from: entry.dtype.rawValue, to: "F32")
        }
    }

    private func dataPointer(_ entry: SafeTensors.TensorEntry) -> UnsafeRawPointer {
        // The mapping exists: a file that passed validation is at least 8 bytes long.
        file.bytes! + dataStart + entry.byteRange.lowerBound
    }
}
