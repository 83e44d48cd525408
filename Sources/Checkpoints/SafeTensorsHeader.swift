import Foundation

/// The decoded and validated JSON header of a safetensors file: the rules of the reference's
/// `SafeTensors::read_metadata` and `Metadata::validate`, plus duplicate detection.
struct SafeTensorsHeader {
    /// Entries in data order (sorted by `data_offsets`), tiling `0..<dataLength`.
    let entries: [SafeTensors.TensorEntry]
    let metadata: [String: String]
    /// The end of the last tensor: the length the data buffer must have.
    let dataLength: Int

    /// Decodes `text` (the header bytes after the length field). `path` only labels errors.
    init(text: UnsafeRawBufferPointer, path: String) throws(CheckpointError) {
        let headerStart = 8
        if String(validating: text, as: UTF8.self) == nil {
            throw .malformedHeader(path: path, byteOffset: headerStart + Self.firstInvalidUTF8Offset(text),
                                   reason: "header is not valid UTF-8")
        }
        let document: HeaderJSON
        do {
            document = try HeaderJSONParser.parse(text)
        } catch {
            throw .malformedHeader(path: path, byteOffset: headerStart + error.offset, reason: error.reason)
        }
        guard case .object(let members) = document else {
            throw .invalidField(path: path, tensor: nil, key: "header", expected: "a JSON object", found: document.summary)
        }

        var metadata: [String: String]? = nil
        var parsed: [(entry: SafeTensors.TensorEntry, order: Int)] = []
        var seenNames = Set<String>()
        for member in members {
            if member.key == SafeTensors.metadataKey {
                guard metadata == nil else {
                    throw .invalidField(path: path, tensor: nil, key: SafeTensors.metadataKey,
                                        expected: "one metadata object", found: "a second one")
                }
                metadata = try Self.decodeMetadata(member.value, path: path)
                continue
            }
            guard seenNames.insert(member.key).inserted else {
                throw .duplicateTensor(path: path, tensor: member.key)
            }
            let entry = try Self.decodeEntry(name: member.key, value: member.value, path: path)
            parsed.append((entry, parsed.count))
        }

        // The reference sorts by offsets before checking that the tensors tile the buffer; the
        // header's own order is free. Ties (empty tensors) keep header order.
        parsed.sort { left, right in
            let (a, b) = (left.entry.byteRange, right.entry.byteRange)
            if a.lowerBound != b.lowerBound { return a.lowerBound < b.lowerBound }
            if a.upperBound != b.upperBound { return a.upperBound < b.upperBound }
            return left.order < right.order
        }
        var expectedBegin = 0
        var previousName: String? = nil
        for (entry, _) in parsed {
            if entry.byteRange.lowerBound != expectedBegin {
                throw .offsetsNotContiguous(path: path, tensor: entry.name, previousTensor: previousName,
                                            expectedBegin: expectedBegin, foundBegin: entry.byteRange.lowerBound)
            }
            try Self.checkByteSize(entry, path: path)
            expectedBegin = entry.byteRange.upperBound
            previousName = entry.name
        }
        self.entries = parsed.map(\.entry)
        self.metadata = metadata ?? [:]
        self.dataLength = expectedBegin
    }

    private static func decodeMetadata(_ value: HeaderJSON, path: String) throws(CheckpointError) -> [String: String] {
        let key = SafeTensors.metadataKey
        switch value {
        case .null:
            // serde reads `Option<HashMap>` from null as None.
            return [:]
        case .object(let members):
            var metadata: [String: String] = [:]
            for member in members {
                guard case .string(let text) = member.value else {
                    throw .invalidField(path: path, tensor: nil, key: "\(key).\(member.key)",
                                        expected: "a string (metadata maps strings to strings)", found: member.value.summary)
                }
                guard metadata.updateValue(text, forKey: member.key) == nil else {
                    throw .invalidField(path: path, tensor: nil, key: "\(key).\(member.key)",
                                        expected: "a key that appears once", found: "it twice")
                }
            }
            return metadata
        default:
            throw .invalidField(path: path, tensor: nil, key: key,
                                expected: "an object mapping strings to strings", found: value.summary)
        }
    }

    private static func decodeEntry(name: String, value: HeaderJSON, path: String) throws(CheckpointError) -> SafeTensors.TensorEntry {
        guard case .object(let fields) = value else {
            throw .invalidField(path: path, tensor: name, key: name,
                                expected: "an object with dtype, shape and data_offsets", found: value.summary)
        }
        func missing(_ key: String) -> CheckpointError {
            .invalidField(path: path, tensor: name, key: key, expected: "a '\(key)' field", found: "none")
        }
        // Unknown fields are ignored, as serde does for the reference's `TensorInfo`.
        var known: [String: HeaderJSON] = [:]
        for field in fields where ["dtype", "shape", "data_offsets"].contains(field.key) {
            guard known.updateValue(field.value, forKey: field.key) == nil else {
                throw .invalidField(path: path, tensor: name, key: field.key, expected: "a key that appears once", found: "it twice")
            }
        }

        guard let dtypeField = known["dtype"] else { throw missing("dtype") }
        guard case .string(let dtypeName) = dtypeField else {
            throw .invalidField(path: path, tensor: name, key: "dtype", expected: "a dtype string", found: dtypeField.summary)
        }
        guard let dtype = SafeTensors.DType(rawValue: dtypeName) else {
            throw .unknownDType(path: path, tensor: name, dtype: dtypeName)
        }

        guard let shapeField = known["shape"] else { throw missing("shape") }
        guard case .array(let dimensionValues) = shapeField else {
            throw .invalidField(path: path, tensor: name, key: "shape", expected: "an array of non-negative integers", found: shapeField.summary)
        }
        var shape: [Int] = []
        for dimension in dimensionValues {
            guard let size = dimension.nonNegativeInteger else {
                throw .invalidField(path: path, tensor: name, key: "shape", expected: "non-negative integers", found: dimension.summary)
            }
            shape.append(size)
        }

        guard let offsetsField = known["data_offsets"] else { throw missing("data_offsets") }
        guard case .array(let offsetValues) = offsetsField, offsetValues.count == 2 else {
            throw .invalidField(path: path, tensor: name, key: "data_offsets",
                                expected: "[begin, end] with two non-negative integers", found: offsetsField.summary)
        }
        guard let begin = offsetValues[0].nonNegativeInteger, let end = offsetValues[1].nonNegativeInteger else {
            throw .invalidField(path: path, tensor: name, key: "data_offsets", expected: "two non-negative integers",
                                found: "\(offsetValues[0].summary) and \(offsetValues[1].summary)")
        }
        guard begin <= end else {
            throw .invalidField(path: path, tensor: name, key: "data_offsets", expected: "begin <= end", found: "[\(begin), \(end)]")
        }
        return SafeTensors.TensorEntry(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)

    }

    /// Checks that the byte range holds exactly shape × dtype size, without overflowing.
    private static func checkByteSize(_ entry: SafeTensors.TensorEntry, path: String) throws(CheckpointError) {
        guard let bitCount = Self.bitCount(shape: entry.shape, dtype: entry.dtype) else {
            throw .invalidField(path: path, tensor: entry.name, key: "shape", expected: "a byte size that fits in 64 bits",
                                found: "\(entry.shape) of \(entry.dtype.rawValue)")
        }
        guard bitCount % 8 == 0 else {
            throw .invalidField(path: path, tensor: entry.name, key: "shape", expected: "a whole number of bytes",
                                found: "\(bitCount) bits for \(entry.shape) of \(entry.dtype.rawValue)")
        }
        if bitCount / 8 != entry.byteRange.count {
            throw .byteSizeMismatch(path: path, tensor: entry.name, dtype: entry.dtype.rawValue, shape: entry.shape,
                                    expectedBytes: bitCount / 8, foundBytes: entry.byteRange.count)
        }
    }

    /// Elements × bits per element, or nil on overflow.
    static func bitCount(shape: [Int], dtype: SafeTensors.DType) -> Int? {
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        let (bits, overflow) = count.multipliedReportingOverflow(by: dtype.bitSize)
        return overflow ? nil : bits
    }

    private static func firstInvalidUTF8Offset(_ text: UnsafeRawBufferPointer) -> Int {
        var decoder = UTF8()
        var iterator = text.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: return offset
            }
        }
    }
}
