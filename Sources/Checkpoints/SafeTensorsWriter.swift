import Foundation
import Tensor

extension SafeTensors {
    /// One tensor to write: Float32 values in row-major order, stored as `dtype`.
    public struct TensorToWrite {
        public let name: String
        public let shape: [Int]
        /// The stored element type: `.f32`, `.f16` or `.bf16`.
        public let dtype: DType
        fileprivate let values: Values

        fileprivate enum Values {
            case array([Float])
            case buffer(UnsafeBufferPointer<Float>)
        }

        /// A tensor whose values live in an array (arrays are shared, not copied, on the way in).
        public init(name: String, shape: [Int], values: [Float], dtype: DType = .f32) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
            self.values = .array(values)
        }

        /// A tensor whose values live in memory the caller owns, such as a tensor's storage; the
        /// memory must stay valid until `write` returns.
        public init(name: String, shape: [Int], borrowing values: UnsafeBufferPointer<Float>, dtype: DType = .f32) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
            self.values = .buffer(values)
        }

        fileprivate func withValues<Result>(_ body: (UnsafeBufferPointer<Float>) throws(CheckpointError) -> Result) throws(CheckpointError) -> Result {
            switch values {
            case .array(let array):
                // `withUnsafeBufferPointer` rethrows untyped errors; carry the typed one out by hand.
                var outcome: Swift.Result<Result, CheckpointError>!
                array.withUnsafeBufferPointer { buffer in
                    do throws(CheckpointError) { outcome = .success(try body(buffer)) } catch { outcome = .failure(error) }
                }
                return try outcome.get()
            case .buffer(let buffer):
                return try body(buffer)
            }
        }

        fileprivate var valueCount: Int {
            switch values {
            case .array(let array): return array.count
            case .buffer(let buffer): return buffer.count
            }
        }
    }

    /// The element types `write` can store.
    public static let writableDTypes: [DType] = [.f32, .f16, .bf16]

    /// Writes `tensors` and `metadata` to `path` atomically (temporary file in the same folder,
    /// fsync, rename).
    ///
    /// The output is deterministic and byte-identical to the reference's `save_file` for the
    /// same tensors: tensors are laid out by descending dtype alignment (F32, then BF16, then F16,
    /// the order of the reference's `Dtype` enum), then by name compared byte-wise; the header
    /// lists `__metadata__` first with its keys sorted byte-wise (the reference keeps the
    /// caller's dict order), omits it when `metadata` is empty, and is padded with spaces to a
    /// multiple of 8 bytes. Values are converted and written in chunks, never copied whole.
    public static func write(_ tensors: [TensorToWrite], metadata: [String: String] = [:], to path: String) throws(CheckpointError) {
        try validate(tensors, path: path)
        let order = tensors.indices.sorted { leftIndex, rightIndex in
            let (left, right) = (tensors[leftIndex], tensors[rightIndex])
            if left.dtype != right.dtype { return left.dtype.referenceRank > right.dtype.referenceRank }
            return left.name.utf8.lexicographicallyPrecedes(right.name.utf8)
        }
        let header = encodeHeader(order.map { tensors[$0] }, metadata: metadata)
        guard header.count <= maximumHeaderLength else {
            throw .cannotWrite(path: path, reason: "header of \(header.count) bytes exceeds the \(maximumHeaderLength)-byte limit readers enforce")
        }

        let output = try AtomicFileOutput(destination: path)
        try output.write(Array(withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }))
        try output.write(header)
        for index in order {
            try writeValues(of: tensors[index], to: output)
        }
        try output.commit()
    }

    private static func validate(_ tensors: [TensorToWrite], path: String) throws(CheckpointError) {
        var names = Set<String>()
        for tensor in tensors {
            guard tensor.name != metadataKey else {
                throw .invalidField(path: path, tensor: tensor.name, key: "name",
                                    expected: "a tensor name other than \(metadataKey)", found: metadataKey)
            }
            guard names.insert(tensor.name).inserted else { throw .duplicateTensor(path: path, tensor: tensor.name) }
            guard writableDTypes.contains(tensor.dtype) else {
                throw .unsupportedConversion(path: path, tensor: tensor.name, from: DType.f32.rawValue, to: tensor.dtype.rawValue)
            }
            guard tensor.shape.allSatisfy({ $0 >= 0 }),
                  let bits = SafeTensorsHeader.bitCount(shape: tensor.shape, dtype: tensor.dtype) else {
                throw .invalidField(path: path, tensor: tensor.name, key: "shape",
                                    expected: "non-negative dimensions with a byte size that fits in 64 bits", found: "\(tensor.shape)")
            }
            let elementCount = bits / tensor.dtype.bitSize
            guard elementCount == tensor.valueCount else {
                throw .elementCountMismatch(path: path, tensor: tensor.name, expected: elementCount, found: tensor.valueCount)
            }
        }
    }

    /// The JSON header for tensors already in file order, padded with spaces to a multiple of 8.
    static func encodeHeader(_ tensors: [TensorToWrite], metadata: [String: String]) -> [UInt8] {
        var json: [UInt8] = [UInt8(ascii: "{")]
        var needsComma = false
        if !metadata.isEmpty {
            HeaderJSONWriter.appendString(metadataKey, to: &json)
            json.append(contentsOf: ":{".utf8)
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (position, key) in keys.enumerated() {
                if position > 0 { json.append(UInt8(ascii: ",")) }
                HeaderJSONWriter.appendString(key, to: &json)
                json.append(UInt8(ascii: ":"))
                HeaderJSONWriter.appendString(metadata[key]!, to: &json)
            }
            json.append(UInt8(ascii: "}"))
            needsComma = true
        }
        var offset = 0
        for tensor in tensors {
            if needsComma { json.append(UInt8(ascii: ",")) }
            needsComma = true
            let byteCount = tensor.valueCount * tensor.dtype.bitSize / 8
            HeaderJSONWriter.appendString(tensor.name, to: &json)
            json.append(contentsOf: ":{\"dtype\":".utf8)
            HeaderJSONWriter.appendString(tensor.dtype.rawValue, to: &json)
            json.append(contentsOf: ",\"shape\":".utf8)
            HeaderJSONWriter.appendIntegers(tensor.shape, to: &json)
            json.append(contentsOf: ",\"data_offsets\":".utf8)
            HeaderJSONWriter.appendIntegers([offset, offset + byteCount], to: &json)
            json.append(UInt8(ascii: "}"))
            offset += byteCount
        }
        json.append(UInt8(ascii: "}"))
        // Padding keeps the data buffer 8-byte aligned in the file, so a mapping can be read as
        // F32/F64 in place.
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        return json
    }

    /// Streams one tensor's values, converted to its dtype, through a fixed-size buffer.
    private static func writeValues(of tensor: TensorToWrite, to output: AtomicFileOutput) throws(CheckpointError) {
        try tensor.withValues { (values) throws(CheckpointError) in
            guard let source = values.baseAddress, !values.isEmpty else { return }
            if tensor.dtype == .f32 {
                // In-memory Float32 is already the little-endian file layout.
                try output.write(UnsafeRawBufferPointer(values))
                return
            }
            let chunkElements = 1 << 16
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkElements * 2, alignment: 16)
            defer { chunk.deallocate() }
            var start = 0
            while start < values.count {
                let count = min(chunkElements, values.count - start)
                if tensor.dtype == .f16 {
                    Precision.f16FromFloats(source + start, count: count, into: chunk.baseAddress!)
                } else {
                    Precision.bf16FromFloats(source + start, count: count, into: chunk.baseAddress!)
                }
                try output.write(UnsafeRawBufferPointer(rebasing: chunk[0..<count * 2]))
                start += count
            }
        }
    }
}
