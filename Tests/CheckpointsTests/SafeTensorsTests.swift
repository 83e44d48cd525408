import XCTest
import Tensor
@testable import Checkpoints

final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func temporaryPath(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    // MARK: - Reference fixture

    private struct ExpectedTensor: Decodable {
        let dtype: String
        let shape: [Int]
        let source: [UInt32]
        let decoded: [UInt32]
    }

    private struct ExpectedFixture: Decodable {
        let metadata: [String: String]
        let tensors: [String: ExpectedTensor]
    }

    private func loadExpected() throws -> ExpectedFixture {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("tiny_expected.json"))
        return try JSONDecoder().decode(ExpectedFixture.self, from: data)
    }

    func testReadsFileWrittenByReferenceImplementation() throws {
        let expected = try loadExpected()
        let file = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("tiny.safetensors").path)
        XCTAssertEqual(file.metadata, expected.metadata)
        XCTAssertEqual(file.names, ["down_blocks.0.weight", "scale", "proj.lora_up", "a.bias", "empty"])
        XCTAssertEqual(Set(file.entries.keys), Set(expected.tensors.keys))
        XCTAssertEqual(file.dataStart % 8, 0)
        for (name, tensor) in expected.tensors {
            let entry = try file.entry(name)
            XCTAssertEqual(entry.dtype.rawValue, tensor.dtype, name)
            XCTAssertEqual(entry.shape, tensor.shape, name)
            XCTAssertEqual(try file.floats(name).map(\.bitPattern), tensor.decoded, name)
        }
    }

    func testWriterReproducesReferenceBytes() throws {
        let expected = try loadExpected()
        // Deliberately not in file order: the writer must sort like the reference.
        let tensors = expected.tensors.keys.sorted(by: >).map { name -> SafeTensors.TensorToWrite in
            let tensor = expected.tensors[name]!
            return SafeTensors.TensorToWrite(name: name, shape: tensor.shape,
                                             values: tensor.source.map(Float.init(bitPattern:)),
                                             dtype: SafeTensors.DType(rawValue: tensor.dtype)!)
        }
        let path = temporaryPath("tiny.safetensors")
        try SafeTensors.write(tensors, metadata: expected.metadata, to: path)
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        let reference = try Data(contentsOf: Self.fixtures.appendingPathComponent("tiny.safetensors"))
        XCTAssertEqual(written, reference)
    }

    func testReadsIntegerBooleanAndDoubleTensors() throws {
        let file = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("mixed_dtypes.safetensors").path)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertEqual(try file.entry("ids").dtype, .i64)
        XCTAssertEqual(try file.floats("ids"), [-3, 0, 1_099_511_627_776])
        XCTAssertEqual(try file.floats("counts"), [1, -2, 3, 2_147_483_648], "Int32.max rounds to the nearest Float")
        XCTAssertEqual(try file.entry("counts").shape, [2, 2])
        XCTAssertEqual(try file.floats("pixels"), [0, 128, 255])
        XCTAssertEqual(try file.floats("mask"), [1, 0, 1])
        XCTAssertEqual(try file.floats("precise"), [Float(0.1), -.infinity, 2.5])
        XCTAssertEqual(try file.floats("small"), [-128, 127])
        XCTAssertEqual(try file.floats("shorts"), [-32768, 1234])
        let raw = try file.withRawBytes("pixels") { Array($0) }
        XCTAssertEqual(raw, [0, 128, 255])
    }

    // MARK: - Round trips

    func testRoundTripEachWritableDType() throws {
        var generator = SplitMix64(seed: 3)
        let random = (0..<1000).map { _ in Float.random(in: -4...4, using: &generator) }
        let exactInAll: [Float] = [0, -0.0, 1, -1, 0.5, 256, -3.75, .infinity, -.infinity]
        let path = temporaryPath("roundtrip.safetensors")
        try SafeTensors.write([
            .init(name: "f32", shape: [10, 100], values: random, dtype: .f32),
            .init(name: "f16", shape: [1000], values: random, dtype: .f16),
            .init(name: "bf16", shape: [2, 500], values: random, dtype: .bf16),
            .init(name: "exact.f16", shape: [exactInAll.count], values: exactInAll, dtype: .f16),
            .init(name: "exact.bf16", shape: [exactInAll.count], values: exactInAll, dtype: .bf16),
            .init(name: "nan.f16", shape: [1], values: [.nan], dtype: .f16),
            .init(name: "nan.bf16", shape: [1], values: [.nan], dtype: .bf16),
        ], to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.floats("f32").map(\.bitPattern), random.map(\.bitPattern))
        XCTAssertEqual(try file.entry("f32").shape, [10, 100])
        for (stored, original) in zip(try file.floats("f16"), random) {
            XCTAssertEqual(stored, Float(Float16(original)))
            XCTAssertLessThanOrEqual(abs(stored - original), max(abs(original) * 0x1p-11, 0x1p-25))
        }
        for (stored, original) in zip(try file.floats("bf16"), random) {
            XCTAssertLessThanOrEqual(abs(stored - original), abs(original) * 0x1p-8)
        }
        XCTAssertEqual(try file.floats("exact.f16").map(\.bitPattern), exactInAll.map(\.bitPattern))
        XCTAssertEqual(try file.floats("exact.bf16").map(\.bitPattern), exactInAll.map(\.bitPattern))
        XCTAssertTrue(try file.floats("nan.f16")[0].isNaN)
        XCTAssertTrue(try file.floats("nan.bf16")[0].isNaN)
        XCTAssertEqual(file.names, ["f32", "bf16", "exact.bf16", "nan.bf16", "exact.f16", "f16", "nan.f16"],
                       "F32 first, then BF16, then F16, each by name")
    }

    func testLargeTensorsStreamThroughChunksAndReadIntoPreallocatedStorage() throws {
        let count = 200_003  // several conversion chunks and a ragged tail
        let values = (0..<count).map { Float($0 % 256) - 128 }  // integers of 8 bits or fewer: exact in F16 and BF16
        let path = temporaryPath("large.safetensors")
        try values.withUnsafeBufferPointer { buffer in
            try SafeTensors.write([
                .init(name: "half", shape: [count], borrowing: buffer, dtype: .f16),
                .init(name: "brain", shape: [count], borrowing: buffer, dtype: .bf16),
                .init(name: "single", shape: [count], borrowing: buffer, dtype: .f32),
            ], to: path)
        }
        let file = try SafeTensorsFile(path: path)
        let storage = Storage(count: count, zeroed: true)
        for name in ["half", "brain", "single"] {
            try file.read(name, into: storage.pointer, count: count)
            XCTAssertTrue(values.indices.allSatisfy { storage.pointer[$0] == values[$0] }, name)
        }
        XCTAssertThrowsError(try file.read("half", into: storage.pointer, count: count - 1)) { error in
            XCTAssertEqual(error as? CheckpointError,
                           .elementCountMismatch(path: path, tensor: "half", expected: count, found: count - 1))
        }
    }

    func testMetadataRoundTripsThroughEscapes() throws {
        let metadata = [
            "format": "pt",
            "quote\"backslash\\": "line\nbreak\ttab\u{1}\u{7F}",
            "unicode ✓ 日本": "emoji 🎬 / slash",
            "": "empty key",
        ]
        let path = temporaryPath("metadata.safetensors")
        try SafeTensors.write([.init(name: "x", shape: [], values: [2])], metadata: metadata, to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(try file.floats("x"), [2])
        XCTAssertEqual(try file.entry("x").shape, [])

        let header = try headerText(path)
        XCTAssertTrue(header.contains(#""quote\"backslash\\":"line\nbreak\ttab\u0001\#u{7F}""#), header)
    }

    func testNoMetadataWritesNoMetadataKey() throws {
        let path = temporaryPath("plain.safetensors")
        try SafeTensors.write([.init(name: "x", shape: [1], values: [1])], to: path)
        XCTAssertEqual(try headerText(path), #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#)
        XCTAssertEqual(try SafeTensorsFile(path: path).metadata, [:])
    }

    func testEmptyFileMatchesReferenceBytes() throws {
        // The reference's `test_empty`: no tensors, no metadata → "{}" padded to 8 bytes.
        let path = temporaryPath("empty.safetensors")
        try SafeTensors.write([], to: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)),
                       Data([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]))
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, [])
    }

    func testHeaderIsPaddedWithSpacesToMultipleOfEight() throws {
        for nameLength in 1...16 {
            let path = temporaryPath("pad\(nameLength).safetensors")
            try SafeTensors.write([.init(name: String(repeating: "n", count: nameLength), shape: [3], values: [1, 2, 3])], to: path)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let headerLength = Int(bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
            XCTAssertEqual(headerLength % 8, 0)
            let header = bytes[8..<(8 + headerLength)]
            let json = header.prefix { $0 != UInt8(ascii: " ") }
            XCTAssertEqual(json.last, UInt8(ascii: "}"))
            XCTAssertLessThan(header.count - json.count, 8)
            XCTAssertTrue(header.dropFirst(json.count).allSatisfy { $0 == UInt8(ascii: " ") })
            XCTAssertEqual(bytes.count, 8 + headerLength + 12)
        }
    }

    func testReadsTensorsAtUnalignedOffsets() throws {
        // A one-byte U8 tensor first puts the F16 and F32 data at odd file offsets.
        var data: [UInt8] = [7]
        data += [0x00, 0x3C, 0x00, 0xC0]  // F16 1, -2
        data += withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
        data += [0x80, 0x3F]  // BF16 1
        let path = try writeRaw("unaligned.safetensors", header: """
            {"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"h":{"dtype":"F16","shape":[2],"data_offsets":[1,5]},\
            "f":{"dtype":"F32","shape":[1],"data_offsets":[5,9]},"z":{"dtype":"BF16","shape":[1],"data_offsets":[9,11]}}
            """, data: data)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, ["b", "h", "f", "z"])
        XCTAssertEqual(try file.floats("b"), [7])
        XCTAssertEqual(try file.floats("h"), [1, -2])
        XCTAssertEqual(try file.floats("f"), [1.5])
        XCTAssertEqual(try file.floats("z"), [1])
    }

    func testEightBitFloatFormats() throws {
        let data: [UInt8] = [0x7B, 0x7C, 0x01,  // E5M2: 57344, Inf, 2^-16
                             0x7E, 0x7F, 0x01, 0xB8,  // E4M3: 448, NaN, 2^-9, -1
                             0x7F, 0x80, 0xFF,  // E8M0: 1, 2, NaN
                             0x7F, 0x80, 0x08,  // E4M3FNUZ: 240, NaN, 2^-7
                             0x7F, 0x80]  // E5M2FNUZ: 57344, NaN
        let path = try writeRaw("fp8.safetensors", header: """
            {"a":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[3,7]},\
            "c":{"dtype":"F8_E8M0","shape":[3],"data_offsets":[7,10]},"d":{"dtype":"F8_E4M3FNUZ","shape":[3],"data_offsets":[10,13]},\
            "e":{"dtype":"F8_E5M2FNUZ","shape":[2],"data_offsets":[13,15]}}
            """, data: data)
        let file = try SafeTensorsFile(path: path)
        func same(_ found: [Float], _ expected: [Float], _ name: String) {
            XCTAssertEqual(found.count, expected.count, name)
            for (value, wanted) in zip(found, expected) {
                XCTAssertTrue(value == wanted || (value.isNaN && wanted.isNaN), "\(name): \(value) vs \(wanted)")
            }
        }
        same(try file.floats("a"), [57344, .infinity, 0x1p-16], "E5M2")
        same(try file.floats("b"), [448, .nan, 0x1p-9, -1], "E4M3")
        same(try file.floats("c"), [1, 2, .nan], "E8M0")
        same(try file.floats("d"), [240, .nan, 0x1p-7], "E4M3FNUZ")
        same(try file.floats("e"), [57344, .nan], "E5M2FNUZ")
    }

    func testPackedAndComplexDTypesAreInspectableButNotConvertible() throws {
        let path = try writeRaw("packed.safetensors", header: """
            {"p":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]},"c":{"dtype":"C64","shape":[1],"data_offsets":[3,11]}}
            """, data: [UInt8](repeating: 0, count: 11))
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.entry("p").byteRange, 0..<3)
        try expectError(try file.floats("p"), path: path, tensor: "p") {
            $0 == .unsupportedConversion(path: path, tensor: "p", from: "F4", to: "F32")
        }
        try expectError(try file.floats("c"), path: path, tensor: "c") {
            if case .unsupportedConversion = $0 { return true } else { return false }
        }
        try expectError(try file.floats("missing"), path: path, tensor: "missing") {
            $0 == .tensorNotFound(path: path, tensor: "missing")
        }
    }

    // MARK: - Writer errors and atomicity

    func testWriterRejectsInconsistentInputAndKeepsThePreviousFile() throws {
        let path = temporaryPath("keep.safetensors")
        try SafeTensors.write([.init(name: "x", shape: [2], values: [1, 2])], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        try expectError(try SafeTensors.write([.init(name: "x", shape: [3], values: [1, 2])], to: path), path: path, tensor: "x") {
            $0 == .elementCountMismatch(path: path, tensor: "x", expected: 3, found: 2)
        }
        try expectError(try SafeTensors.write([.init(name: "x", shape: [1], values: [1]), .init(name: "x", shape: [1], values: [2])], to: path),
                        path: path, tensor: "x") { $0 == .duplicateTensor(path: path, tensor: "x") }
        try expectError(try SafeTensors.write([.init(name: "__metadata__", shape: [1], values: [1])], to: path),
                        path: path, tensor: "__metadata__") {
            if case .invalidField(_, "__metadata__", "name", _, _) = $0 { return true } else { return false }
        }
        try expectError(try SafeTensors.write([.init(name: "ids", shape: [1], values: [1], dtype: .i64)], to: path),
                        path: path, tensor: "ids") { $0 == .unsupportedConversion(path: path, tensor: "ids", from: "F32", to: "I64") }
        try expectError(try SafeTensors.write([.init(name: "neg", shape: [-1], values: [])], to: path), path: path, tensor: "neg") {
            if case .invalidField(_, "neg", "shape", _, _) = $0 { return true } else { return false }
        }

        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["keep.safetensors"],
                       "no temporary files left behind")
    }

    func testWriterReportsUnwritableDestination() throws {
        let path = temporaryPath("no/such/folder/out.safetensors")
        try expectError(try SafeTensors.write([.init(name: "x", shape: [1], values: [1])], to: path), path: path, tensor: nil) {
            if case .cannotWrite(path, _) = $0 { return true } else { return false }
        }
    }

    // MARK: - Malformed corpus

    private let twoFloats = [UInt8](repeating: 0, count: 8)

    func testOverlappingOffsets() throws {
        let path = try writeRaw("overlap.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, data: [UInt8](repeating: 0, count: 12))
        try expectOpenError(path, tensor: "b", mentioning: ["overlaps", "'a'"]) {
            $0 == .offsetsNotContiguous(path: path, tensor: "b", previousTensor: "a", expectedBegin: 8, foundBegin: 4)
        }
    }

    func testHoleBetweenTensors() throws {
        let path = try writeRaw("hole.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}
            """, data: [UInt8](repeating: 0, count: 20))
        try expectOpenError(path, tensor: "b", mentioning: ["hole of 4 bytes"]) {
            $0 == .offsetsNotContiguous(path: path, tensor: "b", previousTensor: "a", expectedBegin: 8, foundBegin: 12)
        }
    }

    func testHoleAtStartOfBuffer() throws {
        let path = try writeRaw("lead.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}
            """, data: [UInt8](repeating: 0, count: 12))
        try expectOpenError(path, tensor: "a", mentioning: ["start of the data buffer"]) {
            $0 == .offsetsNotContiguous(path: path, tensor: "a", previousTensor: nil, expectedBegin: 0, foundBegin: 4)
        }
    }

    func testHeaderLengthPastEndOfFile() throws {
        let path = try writeRaw("past.safetensors", header: "{}", data: [], declaredLength: 1000)
        try expectOpenError(path, tensor: nil, mentioning: ["1000"]) {
            $0 == .headerPastEnd(path: path, declared: 1000, bytesAfterLength: 8)
        }
    }

    func testExtraBytesAfterLastTensor() throws {
        let path = try writeRaw("extra.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}
            """, data: twoFloats + [1, 2, 3])
        try expectOpenError(path, tensor: "a", mentioning: ["extra"]) {
            $0 == .bufferLengthMismatch(path: path, lastTensor: "a", expectedBytes: 8, foundBytes: 11)
        }
    }

    func testMissingBytesAtEndOfFile() throws {
        let path = try writeRaw("short.safetensors", header: """
            {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}
            """, data: Array(twoFloats.dropLast()))
        try expectOpenError(path, tensor: "a", mentioning: ["missing"]) {
            $0 == .bufferLengthMismatch(path: path, lastTensor: "a", expectedBytes: 8, foundBytes: 7)
        }
    }

    func testBadJSON() throws {
        for (index, header) in [#"{"a":{"dtype":"F32","#, #"{"a" 1}"#, #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#,
                                #"{"a\q":1}"#, #"{"\ud800":1}"#, "{\"a\u{1}\":1}", #"{"a":01}"#, #"{"a":tru}"#,
                                String(repeating: "[", count: 500)].enumerated() {
            let path = try writeRaw("bad\(index).safetensors", header: header, data: [])
            try expectOpenError(path, tensor: nil, mentioning: ["malformed JSON header"]) {
                if case .malformedHeader(path, _, _) = $0 { return true } else { return false }
            }
        }
    }

    func testInvalidUTF8Header() throws {
        let path = temporaryPath("utf8.safetensors")
        let header: [UInt8] = Array(#"{"a":""#.utf8) + [0xFF] + Array(#""}  "#.utf8)
        try Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header).write(to: URL(fileURLWithPath: path))
        try expectOpenError(path, tensor: nil, mentioning: ["UTF-8", "byte 14"]) {
            $0 == .malformedHeader(path: path, byteOffset: 14, reason: "header is not valid UTF-8")
        }
    }

    func testHeaderThatIsNotAnObject() throws {
        let path = try writeRaw("array.safetensors", header: "[1,2]", data: [])
        try expectOpenError(path, tensor: nil, mentioning: ["JSON object"]) {
            if case .invalidField(path, nil, "header", _, _) = $0 { return true } else { return false }
        }
    }

    func testDuplicateNames() throws {
        let path = try writeRaw("duplicate.safetensors", header: """
            {"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}
            """, data: twoFloats)
        try expectOpenError(path, tensor: "w", mentioning: ["more than once"]) { $0 == .duplicateTensor(path: path, tensor: "w") }
    }

    func testDuplicateFieldInsideEntry() throws {
        let path = try writeRaw("dupfield.safetensors", header: """
            {"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}
            """, data: [0, 0, 0, 0])
        try expectOpenError(path, tensor: "w", mentioning: ["'dtype'"]) {
            if case .invalidField(path, "w", "dtype", _, _) = $0 { return true } else { return false }
        }
    }

    func testUnknownDType() throws {
        let path = try writeRaw("dtype.safetensors", header: """
            {"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}
            """, data: [0, 0, 0, 0])
        try expectOpenError(path, tensor: "w", mentioning: ["F12", "BF16"]) { $0 == .unknownDType(path: path, tensor: "w", dtype: "F12") }
    }

    func testByteSizeNotMatchingShapeAndDType() throws {
        let path = try writeRaw("size.safetensors", header: """
            {"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}
            """, data: twoFloats)
        try expectOpenError(path, tensor: "w", mentioning: ["12 bytes", "8 bytes"]) {
            $0 == .byteSizeMismatch(path: path, tensor: "w", dtype: "F32", shape: [3], expectedBytes: 12, foundBytes: 8)
        }
    }

    func testShapeWhoseByteSizeOverflows() throws {
        let path = try writeRaw("overflow.safetensors", header: """
            {"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}
            """, data: twoFloats)
        try expectOpenError(path, tensor: "w", mentioning: ["'shape'"]) {
            if case .invalidField(path, "w", "shape", _, _) = $0 { return true } else { return false }
        }
    }

    func testMalformedEntryFields() throws {
        let cases: [(header: String, key: String)] = [
            (#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "shape"),
            (#"{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, "shape"),
            (#"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, "shape"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, "data_offsets"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, "data_offsets"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}"#, "data_offsets"),
            (#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, "dtype"),
            (#"{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, "dtype"),
            (#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, "shape"),
            (#"{"w":{"dtype":"F32","shape":[1]}}"#, "data_offsets"),
            (#"{"w":[1]}"#, "w"),
        ]
        for (index, testCase) in cases.enumerated() {
            let path = try writeRaw("field\(index).safetensors", header: testCase.header, data: [0, 0, 0, 0])
            try expectOpenError(path, tensor: "w", mentioning: ["'\(testCase.key)'"]) {
                if case .invalidField(path, "w", testCase.key, _, _) = $0 { return true } else { return false }
            }
        }
    }

    func testUnknownEntryFieldsAreIgnoredLikeTheReference() throws {
        let path = try writeRaw("extrafield.safetensors", header: """
            {"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"note":{"any":[1,null,true]}}}
            """, data: withUnsafeBytes(of: Float(3).bitPattern.littleEndian, Array.init))
        XCTAssertEqual(try SafeTensorsFile(path: path).floats("w"), [3])
    }

    func testHeaderOver100MegabytesDeclared() throws {
        let path = try writeRaw("huge.safetensors", header: "{}", data: [], declaredLength: 100_000_001)
        try expectOpenError(path, tensor: nil, mentioning: ["100000001", "100000000"]) {
            $0 == .headerTooLarge(path: path, declared: 100_000_001, limit: 100_000_000)
        }
        let absurd = try writeRaw("absurd.safetensors", header: "{}", data: [], declaredLength: .max)
        try expectOpenError(absurd, tensor: nil, mentioning: []) {
            if case .headerTooLarge = $0 { return true } else { return false }
        }
    }

    func testZeroByteAndTruncatedFiles() throws {
        let empty = temporaryPath("zero.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        try expectOpenError(empty, tensor: nil, mentioning: ["0 bytes"]) { $0 == .fileTooShort(path: empty, size: 0) }
        let five = temporaryPath("five.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: five, contents: Data([1, 2, 3, 4, 5])))
        try expectOpenError(five, tensor: nil, mentioning: ["5 bytes"]) { $0 == .fileTooShort(path: five, size: 5) }
    }

    func testMissingFileAndDirectory() throws {
        let missing = temporaryPath("absent.safetensors")
        try expectOpenError(missing, tensor: nil, mentioning: ["cannot open"]) {
            if case .cannotOpen(missing, _) = $0 { return true } else { return false }
        }
        try expectOpenError(directory.path, tensor: nil, mentioning: ["not a regular file"]) {
            if case .cannotOpen = $0 { return true } else { return false }
        }
    }

    func testMetadataThatIsNotAStringMap() throws {
        let cases: [(header: String, key: String)] = [
            (#"{"__metadata__":{"epoch":3}}"#, "__metadata__.epoch"),
            (#"{"__metadata__":{"nested":{"a":"b"}}}"#, "__metadata__.nested"),
            (#"{"__metadata__":["a","b"]}"#, "__metadata__"),
            (#"{"__metadata__":"text"}"#, "__metadata__"),
            (#"{"__metadata__":{"a":"1","a":"2"}}"#, "__metadata__.a"),
            (#"{"__metadata__":{},"__metadata__":{}}"#, "__metadata__"),
        ]
        for (index, testCase) in cases.enumerated() {
            let path = try writeRaw("meta\(index).safetensors", header: testCase.header, data: [])
            try expectOpenError(path, tensor: nil, mentioning: ["'\(testCase.key)'"]) {
                if case .invalidField(path, nil, testCase.key, _, _) = $0 { return true } else { return false }
            }
        }
        let nullMetadata = try writeRaw("metanull.safetensors", header: #"{"__metadata__":null}"#, data: [])
        XCTAssertEqual(try SafeTensorsFile(path: nullMetadata).metadata, [:], "null metadata reads as none, like serde's Option")
    }

    func testErrorsAreLocalized() throws {
        let error = CheckpointError.duplicateTensor(path: "/x.safetensors", tensor: "w")
        XCTAssertEqual(error.localizedDescription, error.description)
    }

    // MARK: - Helpers

    /// Writes a file with the given header text (padded to 8 bytes) and data buffer; the
    /// declared header length can be overridden to describe a corrupt file.
    private func writeRaw(_ name: String, header: String, data: [UInt8], declaredLength: UInt64? = nil) throws -> String {
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8)
        let length = declaredLength ?? UInt64(headerBytes.count)
        let bytes = withUnsafeBytes(of: length.littleEndian, Array.init) + headerBytes + data
        let path = temporaryPath(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func headerText(_ path: String) throws -> String {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = Int(bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        let text = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        return String(text.reversed().drop { $0 == " " }.reversed())
    }

    private func expectOpenError(_ path: String, tensor: String?, mentioning phrases: [String],
                                 file: StaticString = #filePath, line: UInt = #line,
                                 _ matches: (CheckpointError) -> Bool) throws {
        try expectError(try SafeTensorsFile(path: path), path: path, tensor: tensor, mentioning: phrases,
                        file: file, line: line, matches)
    }

    /// Asserts that `expression` throws a `CheckpointError` accepted by `matches`, whose
    /// description names the file, the tensor (when given) and each phrase.
    private func expectError<T>(_ expression: @autoclosure () throws -> T, path: String, tensor: String?,
                                mentioning phrases: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                                _ matches: (CheckpointError) -> Bool) throws {
        do {
            _ = try expression()
            XCTFail("expected an error for \(path)", file: file, line: line)
        } catch let error as CheckpointError {
            XCTAssertTrue(matches(error), "unexpected error: \(error)", file: file, line: line)
            let text = error.description
            XCTAssertTrue(text.hasPrefix(path + ":"), "description does not name the file: \(text)", file: file, line: line)
            if let tensor {
                XCTAssertTrue(text.contains("'\(tensor)'"), "description does not name tensor '\(tensor)': \(text)", file: file, line: line)
            }
            for phrase in phrases {
                XCTAssertTrue(text.contains(phrase), "description lacks \"\(phrase)\": \(text)", file: file, line: line)
            }
        }
    }
}
