import Foundation
import XCTest
@testable import Media

final class PNGTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("png-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    // MARK: - Reading every colour type and bit depth

    private let background: (UInt8, UInt8, UInt8) = (10, 120, 240)

    func testReadsEveryColourTypeAndBitDepth() throws {
        var cases: [(name: String, fixture: PNGFixtureEncoder)] = []
        for depth in [1, 2, 4, 8, 16] {
            cases.append(("grey \(depth)-bit", fixture(colorType: 0, depth: depth)))
        }
        for depth in [8, 16] {
            cases.append(("grey+alpha \(depth)-bit", fixture(colorType: 4, depth: depth)))
            cases.append(("rgb \(depth)-bit", fixture(colorType: 2, depth: depth)))
            cases.append(("rgba \(depth)-bit", fixture(colorType: 6, depth: depth)))
        }
        for depth in [1, 2, 4, 8] {
            cases.append(("palette \(depth)-bit", fixture(colorType: 3, depth: depth)))
            var withAlpha = fixture(colorType: 3, depth: depth)
            withAlpha.transparency = (0..<withAlpha.palette.count).map { UInt8(($0 * 97 + 13) % 256) }
            withAlpha.transparency?.removeLast() // shorter than PLTE: the rest are opaque
            cases.append(("palette \(depth)-bit with tRNS", withAlpha))
        }
        var greyKey = fixture(colorType: 0, depth: 8)
        greyKey.transparency = [0, UInt8(greyKey.samples[5])]
        cases.append(("grey 8-bit with tRNS key", greyKey))
        var rgbKey = fixture(colorType: 2, depth: 16)
        rgbKey.transparency = rgbKey.samples[3..<6].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        cases.append(("rgb 16-bit with tRNS key", rgbKey))

        // Every case again with Adam7 interlacing.
        cases += cases.map { ("\($0.name), interlaced", { var f = $0.fixture; f.interlaced = true; return f }($0)) }

        for (index, testCase) in cases.enumerated() {
            let path = "\(folder)/case\(index).png"
            try Data(testCase.fixture.encode()).write(to: URL(fileURLWithPath: path))
            let (image, info) = try PNGImage.read(path: path, background: background)
            XCTAssertEqual(info.width, testCase.fixture.width, testCase.name)
            XCTAssertEqual(info.height, testCase.fixture.height, testCase.name)
            XCTAssertEqual(info.bitDepth, testCase.fixture.bitDepth, testCase.name)
            XCTAssertEqual(info.colorType.code, testCase.fixture.colorType, testCase.name)
            XCTAssertEqual(info.interlaced, testCase.fixture.interlaced, testCase.name)
            XCTAssertEqual(info.hasTransparency,
                           testCase.fixture.transparency != nil || [4, 6].contains(testCase.fixture.colorType),
                           testCase.name)
            let expected = expectedPixels(testCase.fixture, background: background)
            XCTAssertEqual(image.pixels.count, expected.count, testCase.name)
            if let first = zip(image.pixels, expected).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
                XCTFail("\(testCase.name): byte \(first.offset) (pixel \(first.offset / 3)) is \(first.element.0), expected \(first.element.1)")
            }
        }
    }

    func testSixteenBitSamplesAreRoundedNotTruncated() throws {
        // 0x12FF / 257 = 18.9: rounding gives 19, dropping the low byte would give 18.
        let fixture = PNGFixtureEncoder(width: 4, height: 1, bitDepth: 16, colorType: 0,
                                        samples: [0x0000, 0x12FF, 0x8080, 0xFFFF])
        let path = "\(folder)/grey16.png"
        try Data(fixture.encode()).write(to: URL(fileURLWithPath: path))
        let (image, _) = try PNGImage.read(path: path)
        XCTAssertEqual(image.pixels, [0, 0, 0, 19, 19, 19, 128, 128, 128, 255, 255, 255])
    }

    func testReadsAllTextChunkKinds() throws {
        let compressed = PNGFixtureEncoder.storedZlib(Array("squeezed text".utf8))
        var fixture = fixture(colorType: 2, depth: 8)
        fixture.extraChunks = [
            ("tEXt", Array("Title".utf8) + [0] + [0x63, 0x61, 0x66, 0xE9]), // "café" in Latin-1
            ("zTXt", Array("Comment".utf8) + [0, 0] + compressed),
            ("iTXt", Array("Prompt".utf8) + [0, 0, 0] + Array("ja".utf8) + [0] + Array("プロンプト".utf8) + [0]
                + Array("猫がジャンプする".utf8)),
            ("iTXt", Array("Packed".utf8) + [0, 1, 0, 0, 0] + PNGFixtureEncoder.storedZlib(Array("ünïcode".utf8))),
        ]
        let path = "\(folder)/text.png"
        try Data(fixture.encode()).write(to: URL(fileURLWithPath: path))
        let info = try PNGImage.readInfo(path: path)
        XCTAssertEqual(info.text, ["Title": "café", "Comment": "squeezed text",
                                   "Prompt": "猫がジャンプする", "Packed": "ünïcode"])
    }

    /// gAMA, cHRM, sRGB and iCCP are ignored (as PIL and torchvision do): a file claiming linear
    /// gamma decodes to its stored samples, at 8 and at 16 bits.
    func testColourSpaceChunksAreIgnored() throws {
        for depth in [8, 16] {
            var fixture = fixture(colorType: 2, depth: depth)
            fixture.extraChunks = [("gAMA", [0, 0x01, 0x86, 0xA0]), // gamma 1.0
                                   ("cHRM", [UInt8](repeating: 0, count: 31) + [1])]
            let path = "\(folder)/gamma\(depth).png"
            try Data(fixture.encode()).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try PNGImage.read(path: path).image.pixels,
                           expectedPixels(fixture, background: background), "\(depth)-bit")
        }
    }

    /// Files made by an independent encoder (FFmpeg's PNG encoder, zlib-compressed, its own CRCs).
    func testReadsFilesWrittenByFFmpeg() throws {
        let ffmpeg = "/usr/bin/ffmpeg"
        guard FileManager.default.isExecutableFile(atPath: ffmpeg) else {
            throw XCTSkip("the ffmpeg CLI is not installed")
        }
        let width = 5, height = 3
        let formats: [(pixFmt: String, bytesPerPixel: Int, depth: Int, colorType: PNGColorType)] = [
            ("gray16be", 2, 16, .grey), ("ya8", 2, 8, .greyAlpha), ("rgb48be", 6, 16, .rgb),
            ("rgba64be", 8, 16, .rgba), ("rgb24", 3, 8, .rgb), ("gray", 1, 8, .grey),
        ]
        for format in formats {
            var generator = SplitMix(seed: UInt64(format.bytesPerPixel * 31 + format.depth))
            let raw = (0..<(width * height * format.bytesPerPixel)).map { _ in UInt8(generator.next() & 0xFF) }
            let rawPath = "\(folder)/\(format.pixFmt).raw", pngPath = "\(folder)/\(format.pixFmt).png"
            try Data(raw).write(to: URL(fileURLWithPath: rawPath))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: ffmpeg)
            process.arguments = ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", format.pixFmt,
                                 "-s", "\(width)x\(height)", "-i", rawPath, "-frames:v", "1", pngPath]
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, format.pixFmt)

            let (image, info) = try PNGImage.read(path: pngPath, background: background)
            XCTAssertEqual(info.bitDepth, format.depth, format.pixFmt)
            XCTAssertEqual(info.colorType, format.colorType, format.pixFmt)
            let channels = format.colorType.channels
            let samples = stride(from: 0, to: raw.count, by: format.depth / 8).map { index in
                format.depth == 16 ? Int(raw[index]) << 8 | Int(raw[index + 1]) : Int(raw[index])
            }
            let reference = PNGFixtureEncoder(width: width, height: height, bitDepth: format.depth,
                                              colorType: format.colorType.code, samples: samples)
            XCTAssertEqual(samples.count, width * height * channels)
            XCTAssertEqual(image.pixels, expectedPixels(reference, background: background), format.pixFmt)
        }
    }

    // MARK: - Writing

    func testRGBRoundTripWithText() throws {
        let image = try gradient(width: 37, height: 23)
        let path = "\(folder)/rgb.png"
        let text = [("Title", "frame 7"), ("Comment", "naïve café"), ("Prompt", "a cat 🐈 jumps, 猫")]
        try PNGImage.write(image, to: path, text: text)

        let (read, info) = try PNGImage.read(path: path, background: (0, 0, 0))
        XCTAssertEqual(read, image)
        XCTAssertEqual(info.colorType, .rgb)
        XCTAssertEqual(info.bitDepth, 8)
        XCTAssertFalse(info.hasTransparency)
        XCTAssertEqual(info.text, Dictionary(uniqueKeysWithValues: text))

        // Latin-1 values are tEXt, the others iTXt; no temporary file is left beside the output.
        let chunkTypes = try PNGChunkStream.chunks(of: Array(Data(contentsOf: URL(fileURLWithPath: path))), path: path)
            .map(\.type)
        XCTAssertEqual(Array(chunkTypes.prefix(4)), ["IHDR", "tEXt", "tEXt", "iTXt"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["rgb.png"])
    }

    func testRGBARoundTripCompositesOverTheBackground() throws {
        let width = 16, height = 16
        var rgba: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width { rgba += [UInt8(x * 16), UInt8(y * 16), 77, UInt8(x * 16 + y)] }
        }
        rgba[3] = 0
        rgba[7] = 255
        let path = "\(folder)/rgba.png"
        try PNGImage.writeRGBA(width: width, height: height, rgba: rgba, to: path, text: [("Software", "customize")])

        let bg: (UInt8, UInt8, UInt8) = (200, 100, 0)
        let (image, info) = try PNGImage.read(path: path, background: bg)
        XCTAssertEqual(info.colorType, .rgba)
        XCTAssertEqual(info.channels, 4)
        XCTAssertEqual(info.text, ["Software": "customize"])
        XCTAssertTrue(info.hasTransparency)
        let backdrop = [Int(bg.0), Int(bg.1), Int(bg.2)]
        var expected: [UInt8] = []
        for pixel in 0..<(width * height) {
            let alpha = Int(rgba[pixel * 4 + 3])
            for channel in 0..<3 {
                expected.append(composite(Int(rgba[pixel * 4 + channel]), alpha, backdrop[channel]))
            }
        }
        XCTAssertEqual(image.pixels, expected)
        XCTAssertEqual(image[x: 0, y: 0].r, 200, "alpha 0 gives exactly the background")
        XCTAssertEqual(image[x: 1, y: 0].r, 16, "alpha 255 keeps the colour")
    }

    func testOverwritesAtomicallyAndRejectsBadArguments() throws {
        let path = "\(folder)/out.png"
        try PNGImage.write(try RGBImage(width: 2, height: 2, fill: (1, 2, 3)), to: path)
        try PNGImage.write(try RGBImage(width: 3, height: 1, fill: (9, 9, 9)), to: path)
        XCTAssertEqual(try PNGImage.read(path: path).image, try RGBImage(width: 3, height: 1, fill: (9, 9, 9)))

        let missingFolder = "\(folder)/no/such/folder/out.png"
        XCTAssertThrowsError(try PNGImage.write(try RGBImage(width: 1, height: 1), to: missingFolder)) { error in
            guard case .writeFailed(let failedPath, _) = error as? MediaError else { return XCTFail("\(error)") }
            XCTAssertEqual(failedPath, missingFolder)
        }
        XCTAssertThrowsError(try PNGImage.write(try RGBImage(width: 0, height: 4), to: "\(folder)/empty.png"))
        XCTAssertThrowsError(try PNGImage.writeRGBA(width: 2, height: 2, rgba: [0, 0, 0], to: "\(folder)/short.png"))
        for badKey in ["", " leading", "double  space", String(repeating: "k", count: 80), "日本"] {
            XCTAssertThrowsError(try PNGImage.write(try RGBImage(width: 1, height: 1), to: "\(folder)/key.png",
                                                    text: [(badKey, "value")]), "keyword '\(badKey)'") { error in
                guard case .invalidArgument = error as? MediaError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try PNGImage.write(try RGBImage(width: 1, height: 1), to: "\(folder)/nul.png",
                                                text: [("Key", "a\u{0}b")]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["out.png"])
    }

    /// libpng compresses IDAT with real deflate (Huffman blocks, back-references), so inflating
    /// and un-filtering it must give back the pixels — a check of the zTXt decompressor on data
    /// it did not produce.
    func testInflateDecodesLibpngImageData() throws {
        let image = try gradient(width: 61, height: 29)
        let path = "\(folder)/deflate.png"
        try PNGImage.write(image, to: path)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let stream = try PNGChunkStream.chunks(of: bytes, path: path)
            .filter { $0.type == "IDAT" }.flatMap { bytes[$0.data] }
        let scanlines = try ZlibInflate.decompress(stream[...], limit: 1 << 20)
        XCTAssertEqual(try unfilter(scanlines, width: image.width, height: image.height), image.pixels)
        XCTAssertThrowsError(try ZlibInflate.decompress(stream[...], limit: 100))
    }

    func testChecksumsMatchKnownAnswers() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(ZlibInflate.adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
    }

    // MARK: - Helpers

    /// A fixture with deterministic pseudo-random samples covering the full range of `depth`.
    private func fixture(colorType: UInt8, depth: Int) -> PNGFixtureEncoder {
        var fixture = PNGFixtureEncoder(width: 11, height: 7, bitDepth: depth, colorType: colorType, samples: [])
        var generator = SplitMix(seed: UInt64(colorType) * 100 + UInt64(depth))
        let maxSample = (1 << depth) - 1
        if colorType == 3 {
            fixture.palette = (0...maxSample).map { _ in
                (UInt8(generator.next() & 0xFF), UInt8(generator.next() & 0xFF), UInt8(generator.next() & 0xFF))
            }
        }
        let count = fixture.width * fixture.height * fixture.channels
        fixture.samples = (0..<count).map { _ in Int(generator.next() % UInt64(maxSample + 1)) }
        // Make sure the extremes and, with alpha, fully transparent and opaque pixels occur.
        fixture.samples[0] = 0
        fixture.samples[fixture.channels] = maxSample
        if colorType == 4 || colorType == 6 {
            fixture.samples[fixture.channels * 2 - 1] = maxSample
            fixture.samples[fixture.channels * 3 - 1] = 0
        }
        return fixture
    }

    /// The expected 8-bit RGB result, computed from the PNG spec independently of the reader:
    /// sample scaling (n-bit → 8-bit), palette and tRNS lookup, then sRGB-space compositing.
    private func expectedPixels(_ fixture: PNGFixtureEncoder, background: (UInt8, UInt8, UInt8)) -> [UInt8] {
        let depth = fixture.bitDepth
        func eightBit(_ value: Int) -> Int {
            depth == 16 ? Int((Double(value) / 257).rounded()) : value * 255 / ((1 << depth) - 1)
        }
        func keyMatches(_ samples: ArraySlice<Int>) -> Bool {
            guard let key = fixture.transparency else { return false }
            let keySamples = stride(from: 0, to: key.count, by: 2).map { Int(key[$0]) << 8 | Int(key[$0 + 1]) }
            return Array(samples) == keySamples
        }
        let backdrop = [Int(background.0), Int(background.1), Int(background.2)]
        var pixels: [UInt8] = []
        let channels = fixture.channels
        for pixel in 0..<(fixture.width * fixture.height) {
            let samples = fixture.samples[(pixel * channels)..<((pixel + 1) * channels)]
            let s = Array(samples)
            var rgb: [Int], alpha = 255
            switch fixture.colorType {
            case 0:
                rgb = Array(repeating: eightBit(s[0]), count: 3)
                if keyMatches(samples) { alpha = 0 }
            case 2:
                rgb = s.map(eightBit)
                if keyMatches(samples) { alpha = 0 }
            case 3:
                let entry = fixture.palette[s[0]]
                rgb = [Int(entry.0), Int(entry.1), Int(entry.2)]
                if let table = fixture.transparency, s[0] < table.count { alpha = Int(table[s[0]]) }
            case 4:
                rgb = Array(repeating: eightBit(s[0]), count: 3)
                alpha = eightBit(s[1])
            default:
                rgb = s[0..<3].map(eightBit)
                alpha = eightBit(s[3])
            }
            if depth == 16 && (fixture.colorType == 4 || fixture.colorType == 6) {
                // 16-bit alpha is composited before rounding: premultiplied (stored as an
                // integer, as libpng's linear output is) plus the background's share.
                let alpha16 = Double(s[s.count - 1])
                let colours = fixture.colorType == 4 ? [s[0], s[0], s[0]] : Array(s[0..<3])
                for channel in 0..<3 {
                    let premultiplied = (Double(colours[channel]) * alpha16 / 65535).rounded()
                    let mixed = (premultiplied * 255 + Double(backdrop[channel]) * (65535 - alpha16)) / 65535
                    pixels.append(UInt8(mixed.rounded()))
                }
                continue
            }
            for channel in 0..<3 { pixels.append(composite(rgb[channel], alpha, backdrop[channel])) }
        }
        return pixels
    }

    private func composite(_ colour: Int, _ alpha: Int, _ background: Int) -> UInt8 {
        UInt8((colour * alpha + background * (255 - alpha) + 127) / 255)
    }

    private func gradient(width: Int, height: Int) throws -> RGBImage {
        var generator = SplitMix(seed: 42)
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                pixels += [UInt8((x * 255) / width), UInt8((y * 255) / height),
                           UInt8(truncatingIfNeeded: (x ^ y) * 8 + Int(generator.next() % 4))]
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Reverses PNG filtering (spec §9) for 8-bit RGB scanlines.
    private func unfilter(_ data: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        let stride = width * 3
        XCTAssertEqual(data.count, height * (stride + 1))
        var output = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = data[y * (stride + 1)]
            for i in 0..<stride {
                let raw = Int(data[y * (stride + 1) + 1 + i])
                let left = i >= 3 ? Int(output[y * stride + i - 3]) : 0
                let up = y > 0 ? Int(output[(y - 1) * stride + i]) : 0
                let upLeft = (i >= 3 && y > 0) ? Int(output[(y - 1) * stride + i - 3]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = left
                case 2: predictor = up
                case 3: predictor = (left + up) / 2
                case 4:
                    let estimate = left + up - upLeft
                    let (a, b, c) = (abs(estimate - left), abs(estimate - up), abs(estimate - upLeft))
                    predictor = (a <= b && a <= c) ? left : (b <= c ? up : upLeft)
                default:
                    throw MediaError.corrupt(path: "test", reason: "filter \(filter)")
                }
                output[y * stride + i] = UInt8((raw + predictor) & 0xFF)
            }
        }
        return output
    }
}

/// A tiny deterministic generator for fixture data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
