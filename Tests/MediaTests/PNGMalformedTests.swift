import Foundation
import XCTest
@testable import Media

/// Damaged and hostile files: each must give a `MediaError` whose description names the file
/// and the reason, never a crash (libpng's longjmp must not reach Swift frames).
final class PNGMalformedTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("png-malformed-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func validPNG() throws -> [UInt8] {
        let path = "\(folder)/valid.png"
        var image = try RGBImage(width: 20, height: 10, fill: (5, 6, 7))
        image[x: 3, y: 4] = (250, 0, 9)
        try PNGImage.write(image, to: path, text: [("Title", "valid")])
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes `bytes`, reads them back and checks the error names the file and contains `reason`.
    private func assertReadFails(_ bytes: [UInt8], name: String, reason: String,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let path = "\(folder)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try PNGImage.read(path: path), file: file, line: line) { error in
            guard let mediaError = error as? MediaError else {
                return XCTFail("not a MediaError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(mediaError.description.contains(path), "\(mediaError)", file: file, line: line)
            XCTAssertTrue(mediaError.description.contains(reason), "\(mediaError)", file: file, line: line)
            XCTAssertEqual(mediaError.errorDescription, mediaError.description, file: file, line: line)
        }
    }

    func testZeroByteFile() throws {
        try assertReadFails([], name: "empty.png", reason: "empty")
    }

    func testTextFileNamedPNG() throws {
        try assertReadFails(Array("hello, this is not an image\n".utf8), name: "text.png", reason: "not a PNG file")
    }

    func testTruncatedFiles() throws {
        let bytes = try validPNG()
        try assertReadFails(Array(bytes.prefix(bytes.count / 2)), name: "half.png", reason: "truncated")
        try assertReadFails(Array(bytes.prefix(8)), name: "signature-only.png", reason: "truncated")
        try assertReadFails(Array(bytes.dropLast(12)), name: "no-iend.png", reason: "IEND")
    }

    func testBadCRCNamesTheChunk() throws {
        var bytes = try validPNG()
        let chunks = try PNGChunkStream.chunks(of: bytes, path: "valid")
        let data = chunks.first { $0.type == "IDAT" }!.data
        bytes[data.lowerBound + 2] ^= 0x40
        try assertReadFails(bytes, name: "bad-crc.png", reason: "CRC mismatch in chunk 'IDAT'")
    }

    /// A stream whose CRCs are right but whose compressed data is garbage reaches libpng, which
    /// must report through the simplified API instead of aborting.
    func testCorruptImageDataReportsLibpngError() throws {
        let fixture = PNGFixtureEncoder(width: 4, height: 4, bitDepth: 8, colorType: 2,
                                        samples: Array(repeating: 9, count: 48))
        let good = fixture.encode()
        let chunks = try PNGChunkStream.chunks(of: good, path: "fixture")
        var rebuilt = PNGChunkStream.signature
        for chunk in chunks {
            let data = chunk.type == "IDAT" ? [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0x00, 0x12] : Array(good[chunk.data])
            rebuilt += PNGChunkStream.encodeChunk(type: chunk.type, data: data)
        }
        try assertReadFails(rebuilt, name: "bad-zlib.png", reason: "libpng")
    }

    func testLimitsAreCheckedBeforeDecoding() throws {
        var bytes = PNGFixtureEncoder(width: 1, height: 1, bitDepth: 8, colorType: 0, samples: [0]).encode()
        // Rewrite IHDR to claim 60000 x 60000 and fix its CRC: the pixels are never allocated.
        let chunks = try PNGChunkStream.chunks(of: bytes, path: "fixture")
        var header = Array(bytes[chunks[0].data])
        header.replaceSubrange(0..<8, with: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60])
        bytes.replaceSubrange(8..<33, with: PNGChunkStream.encodeChunk(type: "IHDR", data: header))
        try assertReadFails(bytes, name: "huge.png", reason: "3600000000 pixels")

        let path = "\(folder)/small.png"
        try PNGImage.write(try RGBImage(width: 100, height: 100), to: path)
        XCTAssertThrowsError(try PNGImage.read(path: path, maxPixels: 9_999)) { error in
            guard case .tooLarge(let failedPath, _, _) = error as? MediaError else { return XCTFail("\(error)") }
            XCTAssertEqual(failedPath, path)
        }
        XCTAssertNoThrow(try PNGImage.read(path: path, maxPixels: 10_000))
    }

    func testInvalidHeaderFields() throws {
        let base = PNGFixtureEncoder(width: 2, height: 2, bitDepth: 8, colorType: 2, samples: Array(repeating: 1, count: 12))
        func withHeaderByte(_ index: Int, _ value: UInt8) throws -> [UInt8] {
            var bytes = base.encode()
            var header = Array(bytes[16..<29])
            header[index] = value
            bytes.replaceSubrange(8..<33, with: PNGChunkStream.encodeChunk(type: "IHDR", data: header))
            return bytes
        }
        try assertReadFails(try withHeaderByte(8, 4), name: "depth.png", reason: "bit depth 4")
        try assertReadFails(try withHeaderByte(9, 5), name: "colour.png", reason: "colour type 5")
        try assertReadFails(try withHeaderByte(12, 2), name: "interlace.png", reason: "interlace method 2")

        var palette = PNGFixtureEncoder(width: 2, height: 1, bitDepth: 8, colorType: 3, samples: [0, 0])
        palette.palette = []
        try assertReadFails(palette.encode(), name: "no-plte.png", reason: "PLTE")

        var unknownCritical = base
        unknownCritical.extraChunks = [("QQQQ", [1, 2, 3])]
        XCTAssertThrowsError(try {
            let path = "\(folder)/critical.png"
            try Data(unknownCritical.encode()).write(to: URL(fileURLWithPath: path))
            _ = try PNGImage.read(path: path)
        }()) { error in
            guard case .unsupported = error as? MediaError else { return XCTFail("\(error)") }
        }
        var unknownAncillary = base
        unknownAncillary.extraChunks = [("qqQQ", [1, 2, 3])]
        let path = "\(folder)/ancillary.png"
        try Data(unknownAncillary.encode()).write(to: URL(fileURLWithPath: path))
        XCTAssertNoThrow(try PNGImage.read(path: path), "unknown ancillary chunks are skipped")
    }

    func testMissingFileAndFolder() throws {
        let missing = "\(folder)/missing.png"
        XCTAssertThrowsError(try PNGImage.read(path: missing)) { error in
            XCTAssertEqual(error as? MediaError, .unreadable(path: missing, reason: "No such file or directory"))
        }
        XCTAssertThrowsError(try PNGImage.read(path: folder)) { error in
            guard case .unreadable(let failedPath, _) = error as? MediaError else { return XCTFail("\(error)") }
            XCTAssertEqual(failedPath, folder)
        }
    }

    func testCorruptCompressedText() throws {
        var fixture = PNGFixtureEncoder(width: 1, height: 1, bitDepth: 8, colorType: 0, samples: [3])
        fixture.extraChunks = [("zTXt", Array("Comment".utf8) + [0, 0, 0x78, 0x01, 0x05, 0x00])]
        try assertReadFails(fixture.encode(), name: "ztxt.png", reason: "zTXt chunk")
    }
}
