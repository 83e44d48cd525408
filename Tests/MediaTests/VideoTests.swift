import Foundation
import XCTest
@testable import Media

final class VideoTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("VideoTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // MARK: - Fixtures

    private func file(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// A smooth moving colour pattern; frame `index` is shifted so every frame differs.
    private func smoothFrame(_ index: Int, width: Int = 96, height: Int = 64) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let phase = Double(index) * 0.6
        for y in 0..<height {
            for x in 0..<width {
                let u = Double(x) / Double(width), v = Double(y) / Double(height)
                let offset = (y * width + x) * 3
                pixels[offset] = UInt8(128 + 90 * sin(2 * .pi * u + phase))
                pixels[offset + 1] = UInt8(128 + 90 * cos(2 * .pi * v + phase * 0.7))
                pixels[offset + 2] = UInt8(128 + 60 * sin(2 * .pi * (u + v) - phase))
            }
        }
        return try! RGBImage(width: width, height: height, pixels: pixels)
    }

    private func meanAbsoluteError(_ a: RGBImage, _ b: RGBImage) -> Double {
        precondition(a.width == b.width && a.height == b.height)
        var total = 0
        for i in 0..<a.pixels.count { total += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
        return Double(total) / Double(a.pixels.count)
    }

    /// Index of the original frame closest to `decoded`.
    private func nearestIndex(_ decoded: RGBImage, in originals: [RGBImage]) -> Int {
        originals.indices.min { meanAbsoluteError(decoded, originals[$0]) < meanAbsoluteError(decoded, originals[$1]) }!
    }

    private func ffmpegCLI() throws -> String {
        let candidates = ["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("the ffmpeg command-line tool is not installed")
        }
        return found
    }

    /// Runs the ffmpeg CLI to make a 96x64, 10 fps, 12-frame `testsrc` clip.
    @discardableResult
    private func makeCLIClip(_ name: String, frames: Int = 12, extraArguments: [String] = []) throws -> String {
        let output = file(name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ffmpegCLI())
        process.arguments = ["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10",
                             "-frames:v", String(frames)] + extraArguments + ["-y", output]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "ffmpeg failed to make \(name)")
        return output
    }

    /// `ffprobe`'s view of the first video stream: decoded frame count, pixel format, colour matrix.
    private func probeWithCLI(_ path: String) throws -> String {
        let probe = URL(fileURLWithPath: try ffmpegCLI()).deletingLastPathComponent().appendingPathComponent("ffprobe")
        let process = Process()
        let pipe = Pipe()
        process.executableURL = probe
        process.arguments = ["-v", "error", "-count_frames", "-select_streams", "v:0",
                             "-show_entries", "stream=nb_read_frames,pix_fmt,color_space", "-of", "csv=p=0", path]
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func assertMediaError(_ path: String, _ kind: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                                  _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a MediaError for \(path)", file: file, line: line)
        } catch let error as MediaError {
            XCTAssertTrue(error.description.contains(path), "'\(error)' does not name \(path)", file: file, line: line)
            if let kind {
                XCTAssertEqual(self.kind(error), kind, "'\(error)' is not .\(kind)", file: file, line: line)
            }
        } catch {
            XCTFail("expected a MediaError, got \(error)", file: file, line: line)
        }
    }

    private func kind(_ error: MediaError) -> String {
        switch error {
        case .unreadable: return "unreadable"
        case .corrupt: return "corrupt"
        case .unsupported: return "unsupported"
        case .tooLarge: return "tooLarge"
        case .writeFailed: return "writeFailed"
        case .invalidArgument: return "invalidArgument"
        }
    }

    // MARK: - Round trips

    func testMP4RoundTripKeepsEveryFrameInOrder() throws {
        let originals = (0..<25).map { smoothFrame($0) }
        let path = file("clip.mp4")
        let writer = try VideoWriter(path: path, options: .init(fps: 10))
        for frame in originals { try writer.append(frame) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the destination must appear only at finish()")
        try writer.finish()
        XCTAssertEqual(writer.encoderName, "libx264")

        let reader = try VideoReader(path: path)
        XCTAssertEqual(reader.info.width, 96)
        XCTAssertEqual(reader.info.height, 64)
        XCTAssertEqual(reader.info.codec, "h264")
        XCTAssertEqual(reader.info.frameCount, 25)
        XCTAssertTrue(reader.info.frameCountIsExact)
        XCTAssertEqual(reader.info.fps, 10, accuracy: 1e-6)
        XCTAssertEqual(reader.info.duration, 2.5, accuracy: 0.11)

        // libx264 keeps frames back for B-frames and lookahead: only a drained decoder and
        // encoder give all 25 back.
        let decoded = try reader.readFrames()
        XCTAssertEqual(decoded.count, 25)
        for (index, frame) in decoded.enumerated() {
            XCTAssertEqual(frame.width, 96)
            XCTAssertEqual(frame.height, 64)
            // crf 18 on a smooth pattern: mean absolute error well under 4 levels of 255.
            XCTAssertLessThan(meanAbsoluteError(frame, originals[index]), 4, "frame \(index)")
            XCTAssertEqual(nearestIndex(frame, in: originals), index)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
        // Other players see the same: the FFmpeg CLI decodes 25 BT.601-tagged yuv420p frames.
        XCTAssertEqual(try probeWithCLI(path), "yuv420p,smpte170m,25")
    }

    func testGIFRoundTripWithManyColours() throws {
        let originals = (0..<12).map { smoothFrame($0) }
        let path = file("clip.gif")
        try VideoWriter.write(originals, to: path, options: .init(fps: 10))
        let reader = try VideoReader(path: path)
        XCTAssertEqual(reader.info.codec, "gif")
        XCTAssertEqual(reader.info.width, 96)
        XCTAssertEqual(reader.info.height, 64)
        let decoded = try reader.readFrames()
        XCTAssertEqual(decoded.count, 12)
        for (index, frame) in decoded.enumerated() {
            // 256 median-cut colours, no dithering. FFmpeg's palettegen (stats_mode=full) with
            // paletteuse (dither=none) reaches 5.96 on this pattern; allow 6.5.
            XCTAssertLessThan(meanAbsoluteError(frame, originals[index]), 6.5, "frame \(index)")
        }
        XCTAssertEqual(try loopCount(ofGIF: path), 0, "GIFs loop forever")
        XCTAssertTrue(try probeWithCLI(path).hasSuffix(",12"), "the FFmpeg CLI does not see 12 frames")
    }

    func testGIFWithFewColoursIsLossless() throws {
        let palette: [(UInt8, UInt8, UInt8)] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 250), (10, 20, 30)]
        let originals: [RGBImage] = (0..<6).map { index in
            var pixels = [UInt8]()
            for y in 0..<30 {
                for x in 0..<41 {
                    let c = palette[(x / 7 + y / 5 + index) % palette.count]
                    pixels += [c.0, c.1, c.2]
                }
            }
            return try! RGBImage(width: 41, height: 30, pixels: pixels)
        }
        let path = file("blocks.gif")
        try VideoWriter.write(originals, to: path, options: .init(fps: 5))
        XCTAssertEqual(try VideoReader(path: path).readFrames(), originals)
    }

    func testMPEG4FallbackWritesAReadableMP4() throws {
        let originals = (0..<9).map { smoothFrame($0) }
        let path = file("fallback.mp4")
        let writer = try VideoWriter(path: path, options: .init(fps: 12, crf: 8))
        writer.mp4Encoders = ["mpeg4"]  // as on an FFmpeg built without libx264
        for frame in originals { try writer.append(frame) }
        try writer.finish()
        XCTAssertEqual(writer.encoderName, "mpeg4")
        let reader = try VideoReader(path: path)
        XCTAssertEqual(reader.info.codec, "mpeg4")
        XCTAssertEqual(reader.info.fps, 12, accuracy: 1e-6)
        let decoded = try reader.readFrames()
        XCTAssertEqual(decoded.count, 9)
        for (index, frame) in decoded.enumerated() {
            // Fixed quantiser 2: mean absolute error under 4 levels.
            XCTAssertLessThan(meanAbsoluteError(frame, originals[index]), 4, "frame \(index)")
        }
    }

    func testOutputBytesAreDeterministic() throws {
        let frames = (0..<10).map { smoothFrame($0) }
        for ext in ["mp4", "gif"] {
            try VideoWriter.write(frames, to: file("a.\(ext)"))
            try VideoWriter.write(frames, to: file("b.\(ext)"))
            let a = try Data(contentsOf: URL(fileURLWithPath: file("a.\(ext)")))
            let b = try Data(contentsOf: URL(fileURLWithPath: file("b.\(ext)")))
            XCTAssertFalse(a.isEmpty)
            XCTAssertEqual(a, b, ".\(ext) output differs between two identical writes")
        }
    }

    func testOddSizesArePaddedOrRefused() throws {
        let odd = smoothFrame(0, width: 33, height: 21)
        let padded = file("odd.mp4")
        try VideoWriter.write([odd, odd], to: padded)
        let info = try VideoReader(path: padded).info
        XCTAssertEqual([info.width, info.height], [34, 22])

        let refused = file("refused.mp4")
        assertMediaError(refused, "unsupported") {
            try VideoWriter.write([odd], to: refused, options: .init(oddSize: .fail))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: refused))
        let gif = file("odd.gif")
        try VideoWriter.write([odd], to: gif)
        XCTAssertEqual(try VideoReader(path: gif).readFrames().first?.width, 33)
    }

    func testWriterRejectsBadInput() throws {
        let frame = smoothFrame(0)
        let mixed = file("mixed.mp4")
        let writer = try VideoWriter(path: mixed)
        try writer.append(frame)
        assertMediaError(mixed, "writeFailed") { try writer.append(smoothFrame(1, width: 64, height: 64)) }
        assertMediaError(mixed, "writeFailed") { try writer.finish() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: mixed))

        let avi = file("clip.avi")
        assertMediaError(avi, "unsupported") { _ = try VideoWriter(path: avi) }
        let nowhere = file("missing-folder/clip.mp4")
        assertMediaError(nowhere, "writeFailed") { _ = try VideoWriter(path: nowhere) }
        let empty = file("empty.mp4")
        assertMediaError(empty, "writeFailed") { try VideoWriter(path: empty).finish() }
        let short = file("short.gif")
        assertMediaError(short, "writeFailed") {
            var image = try RGBImage(width: 4, height: 4)
            image.pixels = [1, 2, 3]  // a buffer that no longer matches its size
            try VideoWriter(path: short).append(image)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }

    // MARK: - Sampling and resizing

    private func writeNumberedClip() throws -> (path: String, originals: [RGBImage]) {
        let originals = (0..<20).map { smoothFrame($0) }
        let path = file("numbered.mp4")
        try VideoWriter.write(originals, to: path, options: .init(fps: 10, crf: 10))
        return (path, originals)
    }

    func testSamplingByStrideFpsAndStart() throws {
        let (path, originals) = try writeNumberedClip()
        let reader = try VideoReader(path: path)
        func indices(_ frames: [RGBImage]) -> [Int] { frames.map { nearestIndex($0, in: originals) } }

        XCTAssertEqual(indices(try reader.readFrames(stride: 3)), [0, 3, 6, 9, 12, 15, 18])
        XCTAssertEqual(indices(try reader.readFrames(fps: 5)), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
        XCTAssertEqual(indices(try reader.readFrames(count: 4, start: 1.0)), [10, 11, 12, 13])
        XCTAssertEqual(indices(try reader.readFrames(count: 3, fps: 5, start: 0.5)), [5, 7, 9])
        XCTAssertEqual(indices(try reader.readFrames(count: 3, stride: 4, start: 0.3)), [3, 7, 11])
        // A rate above the file's repeats frames, each instant taking its nearest frame.
        XCTAssertEqual(indices(try reader.readFrames(count: 6, fps: 40)), [0, 0, 1, 1, 1, 1])
        // Asking past the end returns what there is.
        XCTAssertEqual(indices(try reader.readFrames(count: 10, start: 1.6)), [16, 17, 18, 19])
        XCTAssertEqual(try reader.readFrames(count: 0), [])

        assertMediaError(path, "unsupported") { _ = try reader.readFrames(fps: 5, stride: 2) }
        assertMediaError(path, "unsupported") { _ = try reader.readFrames(stride: 0) }
        assertMediaError(path, "unsupported") { _ = try reader.readFrames(fps: -1) }
        assertMediaError(path, "unsupported") { _ = try reader.readFrames(start: -2) }
    }

    func testCentreCropKeepsTheMiddleAndLetterboxPadsWithBlack() throws {
        // 96x64: 16-pixel red borders left and right, green in the middle 64 columns.
        var pixels = [UInt8]()
        for _ in 0..<64 {
            for x in 0..<96 { pixels += (16..<80).contains(x) ? [0, 200, 0] : [200, 0, 0] }
        }
        let frame = try! RGBImage(width: 96, height: 64, pixels: pixels)
        let path = file("bordered.mp4")
        try VideoWriter.write([frame, frame, frame], to: path, options: .init(crf: 0))
        let reader = try VideoReader(path: path)

        let cropped = try reader.readFrames(count: 1, size: (32, 32), mode: .centerCrop)[0]
        XCTAssertEqual([cropped.width, cropped.height], [32, 32])
        for x in 2..<30 {  // away from the edges, where the red borders may bleed through chroma filtering
            let offset = (16 * 32 + x) * 3
            XCTAssertLessThan(Int(cropped.pixels[offset]), 40, "red at column \(x) of the centre crop")
            XCTAssertGreaterThan(Int(cropped.pixels[offset + 1]), 160, "no green at column \(x)")
        }

        let boxed = try reader.readFrames(count: 1, size: (64, 64), mode: .letterbox)[0]
        XCTAssertEqual([boxed.width, boxed.height], [64, 64])
        // 96x64 fits as 64x43, centred: rows 0..<10 and 53..<64 are black bars.
        for row in [0, 9, 53, 63] {
            XCTAssertEqual(Set(boxed.pixels[(row * 64 * 3)..<((row + 1) * 64 * 3)]), [0], "row \(row) is not black")
        }
        let middle = 32 * 64 * 3 + 32 * 3
        XCTAssertGreaterThan(Int(boxed.pixels[middle + 1]), 160)
        XCTAssertLessThan(Int(boxed.pixels[2 * 3]), 255)
        XCTAssertGreaterThan(Int(boxed.pixels[(32 * 64 + 1) * 3]), 120, "the red border is kept by letterboxing")

        let tall = try reader.readFrames(count: 1, size: (20, 40), mode: .centerCrop)[0]
        XCTAssertEqual([tall.width, tall.height], [20, 40])
        let upscaled = try reader.readFrames(count: 1, size: (150, 100), mode: .letterbox)[0]
        XCTAssertEqual([upscaled.width, upscaled.height], [150, 100])
    }

    // MARK: - Containers made by the ffmpeg CLI

    func testReadsClipsFromTheFFmpegCLI() throws {
        let cases: [(name: String, container: String, codec: String, arguments: [String])] = [
            ("clip.mkv", "matroska", "h264", []),
            ("clip.webm", "webm", "vp9", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]),
            ("clip.avi", "avi", "mpeg4", []),
            ("clip.mov", "mov", "h264", []),
            ("clip.gif", "gif", "gif", []),
            ("clip.mp4", "mp4", "h264", ["-pix_fmt", "yuv444p"]),
        ]
        for item in cases {
            let path = try makeCLIClip(item.name, extraArguments: item.arguments)
            let reader = try VideoReader(path: path)
            XCTAssertTrue(reader.info.container.contains(item.container), "\(item.name): \(reader.info.container)")
            XCTAssertEqual(reader.info.codec, item.codec, item.name)
            XCTAssertEqual([reader.info.width, reader.info.height], [96, 64], item.name)
            XCTAssertEqual(reader.info.fps, 10, accuracy: 0.5, item.name)
            XCTAssertEqual(reader.info.frameCount, 12, accuracy: reader.info.frameCountIsExact ? 0 : 1, item.name)
            let frames = try reader.readFrames()
            XCTAssertEqual(frames.count, 12, item.name)
            XCTAssertEqual(try reader.readFrames(count: 2, size: (48, 48)).map { [$0.width, $0.height] }, [[48, 48], [48, 48]], item.name)
            // testsrc differs from frame to frame (its counter and moving bar).
            XCTAssertNotEqual(frames[0], frames[11], item.name)
        }
    }

    // MARK: - Malformed and hostile input

    func testMalformedFilesThrowErrorsNamingThem() throws {
        let source = try makeCLIClip("source.mp4")  // moov atom at the end
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        let truncated = file("truncated.mp4")
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: truncated))
        assertMediaError(truncated) { _ = try VideoReader(path: truncated).readFrames() }

        let fastStart = file("faststart.mp4")
        try VideoWriter.write((0..<30).map { smoothFrame($0) }, to: fastStart)
        let fastData = try Data(contentsOf: URL(fileURLWithPath: fastStart))
        let truncatedFastStart = file("truncated-faststart.mp4")
        try fastData.prefix(fastData.count * 2 / 3).write(to: URL(fileURLWithPath: truncatedFastStart))
        assertMediaError(truncatedFastStart) { _ = try VideoReader(path: truncatedFastStart).readFrames() }

        let empty = file("empty.mp4")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        assertMediaError(empty, "corrupt") { _ = try VideoReader(path: empty) }

        let text = file("notes.mp4")
        try "This is not a video, just some text.\n".write(toFile: text, atomically: true, encoding: .utf8)
        assertMediaError(text) { _ = try VideoReader(path: text) }

        let missing = file("missing.mp4")
        assertMediaError(missing, "unreadable") { _ = try VideoReader(path: missing) }
        assertMediaError(folder.path, "unreadable") { _ = try VideoReader(path: folder.path) }
    }

    /// Damaged bytes anywhere in a file end in frames or a `MediaError`, never a trap.
    func testRandomlyDamagedFilesNeverCrash() throws {
        let sources = [try makeCLIClip("fuzz.mkv"), try makeCLIClip("fuzz.gif")]
        let ours = file("fuzz.mp4")
        try VideoWriter.write((0..<12).map { smoothFrame($0) }, to: ours)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {  // xorshift: the same damage on every run
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state >> 1)
        }
        for source in sources + [ours] {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
            for attempt in 0..<12 {
                var damaged = original
                for _ in 0..<(1 + attempt * 4) { damaged[16 + next() % (damaged.count - 16)] = UInt8(next() & 0xFF) }
                let path = file("damaged-\(attempt)-" + URL(fileURLWithPath: source).lastPathComponent)
                try Data(damaged).write(to: URL(fileURLWithPath: path))
                do {
                    let frames = try VideoReader(path: path).readFrames(size: (32, 32))
                    XCTAssertTrue(frames.allSatisfy { $0.pixels.count == 32 * 32 * 3 }, path)
                } catch let error as MediaError {
                    XCTAssertTrue(error.description.contains(path), "'\(error)' does not name \(path)")
                }
            }
        }
    }

    func testFilesThatReachForOtherFilesOrURLsAreRefused() throws {
        try makeCLIClip("segment.ts", extraArguments: ["-f", "mpegts"])
        let playlist = file("playlist.m3u8")
        try """
            #EXTM3U
            #EXT-X-VERSION:3
            #EXT-X-TARGETDURATION:2
            #EXT-X-MEDIA-SEQUENCE:0
            #EXTINF:1.2,
            segment.ts
            #EXT-X-ENDLIST

            """.write(toFile: playlist, atomically: true, encoding: .utf8)
        assertMediaError(playlist, "unsupported") { _ = try VideoReader(path: playlist) }

        let concat = file("list.ffconcat")
        try "ffconcat version 1.0\nfile 'segment.ts'\nfile '/etc/passwd'\n".write(toFile: concat, atomically: true, encoding: .utf8)
        assertMediaError(concat, "unsupported") { _ = try VideoReader(path: concat) }

        // The segment itself is a plain MPEG-TS file and reads fine.
        XCTAssertEqual(try VideoReader(path: file("segment.ts")).readFrames().count, 12)

        for url in ["http://example.com/a.mp4", "file:///etc/passwd", "pipe:0", "-i"] {
            assertMediaError(url, "unsupported") { _ = try VideoReader(path: url) }
        }
    }

    func testLimitsAreEnforced() throws {
        let path = try makeCLIClip("limits.mkv", frames: 30)
        assertMediaError(path, "tooLarge") { _ = try VideoReader(path: path, limits: .init(maxWidth: 64)) }
        assertMediaError(path, "tooLarge") { _ = try VideoReader(path: path, limits: .init(maxHeight: 32)) }
        assertMediaError(path, "tooLarge") { _ = try VideoReader(path: path, limits: .init(maxDuration: 1)) }
        assertMediaError(path, "tooLarge") { _ = try VideoReader(path: path, limits: .init(maxFrameCount: 10)) }
        assertMediaError(path, "unreadable") { _ = try VideoReader(path: path, limits: .init(timeout: 0)) }
        let reader = try VideoReader(path: path)
        assertMediaError(path, "tooLarge") { _ = try reader.readFrames(size: (10_000, 64)) }
        do {
            _ = try VideoReader(path: path, limits: .init(maxWidth: 64))
        } catch let error as MediaError {
            XCTAssertEqual(kind(error), "tooLarge")
            XCTAssertTrue(error.description.contains("maxWidth"), error.description)
        }
    }

    // MARK: - Helpers reading the files back

    /// The NETSCAPE2.0 application extension's loop count (0 = forever), or nil when absent.
    private func loopCount(ofGIF path: String) throws -> Int? {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let marker = Array("NETSCAPE2.0".utf8)
        guard let start = (0...(bytes.count - marker.count)).first(where: { Array(bytes[$0..<($0 + marker.count)]) == marker }) else {
            return nil
        }
        let sub = start + marker.count  // sub-block: size 3, id 1, loop count little-endian
        return Int(bytes[sub + 2]) | Int(bytes[sub + 3]) << 8
    }
}
