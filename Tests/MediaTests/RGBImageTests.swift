import XCTest
@testable import Media

final class RGBImageTests: XCTestCase {
    /// A 4x2 image whose red channel is `values` row-major; green = 2 * red, blue = 0.
    private func image(_ width: Int, _ height: Int, red values: [UInt8]) throws -> RGBImage {
        try RGBImage(width: width, height: height, pixels: values.flatMap { [$0, $0 &* 2, 0] })
    }

    private func reds(_ image: RGBImage) -> [UInt8] {
        stride(from: 0, to: image.pixels.count, by: 3).map { image.pixels[$0] }
    }

    func testInitValidatesPixelCount() throws {
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 0, count: 11))) { error in
            guard case .invalidArgument = error as? MediaError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try RGBImage(width: -1, height: 2, fill: (0, 0, 0)))
        XCTAssertThrowsError(try RGBImage(width: Int.max, height: 2, fill: (0, 0, 0)))
        var filled = try RGBImage(width: 3, height: 2, fill: (1, 2, 3))
        XCTAssertEqual(filled.pixels, Array([[UInt8]](repeating: [1, 2, 3], count: 6).joined()))
        filled[x: 2, y: 1] = (7, 8, 9)
        XCTAssertEqual(filled.pixels.suffix(3), [7, 8, 9])
        XCTAssertTrue(filled[x: 2, y: 1] == (7, 8, 9))
        XCTAssertTrue(filled[x: 0, y: 1] == (1, 2, 3))
    }

    func testStretchDownscaleAveragesAreas() throws {
        let source = try image(4, 2, red: [10, 20, 30, 50,
                                           30, 40, 70, 90])
        let result = try source.resized(width: 2, height: 1, mode: .stretch)
        XCTAssertEqual(reds(result), [25, 60]) // (10+20+30+40)/4, (30+50+70+90)/4
        XCTAssertEqual(result.pixels[1], 50)   // green follows: 2 * 25
    }

    func testFractionalAreaAverage() throws {
        // 3 -> 2: each output covers 1.5 source pixels.
        let result = try image(3, 1, red: [0, 90, 180]).resized(width: 2, height: 1, mode: .stretch)
        XCTAssertEqual(reds(result), [30, 150]) // (0 + 0.5*90)/1.5, (0.5*90 + 180)/1.5
    }

    func testUpscaleIsBilinearAtPixelCentres() throws {
        let result = try image(2, 1, red: [0, 100]).resized(width: 4, height: 1, mode: .stretch)
        XCTAssertEqual(reds(result), [0, 25, 75, 100])
    }

    func testCenterCropKeepsTheMiddle() throws {
        let source = try image(4, 2, red: [1, 2, 3, 4,
                                           5, 6, 7, 8])
        let result = try source.resized(width: 2, height: 2, mode: .centerCrop)
        XCTAssertEqual(result.width, 2)
        XCTAssertEqual(result.height, 2)
        XCTAssertEqual(reds(result), [2, 3, 6, 7])

        let wide = try RGBImage(width: 640, height: 360, fill: (9, 9, 9))
        let square = try wide.resized(width: 256, height: 256, mode: .centerCrop)
        XCTAssertEqual(square.width, 256)
        XCTAssertEqual(square.height, 256)
        XCTAssertEqual(square, try RGBImage(width: 256, height: 256, fill: (9, 9, 9)))
    }

    func testLetterboxPadsWithBackground() throws {
        let source = try image(4, 2, red: [100, 100, 100, 100,
                                           100, 100, 100, 100])
        let result = try source.resized(width: 4, height: 4, mode: .letterbox(background: (1, 2, 3)))
        XCTAssertEqual(result.width, 4)
        XCTAssertEqual(result.height, 4)
        for y in 0..<4 {
            for x in 0..<4 {
                let expected: (UInt8, UInt8, UInt8) = (y == 0 || y == 3) ? (1, 2, 3) : (100, 200, 0)
                XCTAssertTrue(result[x: x, y: y] == expected, "(\(x), \(y)) is \(result[x: x, y: y])")
            }
        }

        let tall = try RGBImage(width: 90, height: 160, fill: (50, 60, 70))
        let boxed = try tall.resized(width: 320, height: 180, mode: .letterbox(background: (0, 0, 0)))
        XCTAssertEqual(boxed.width, 320)
        XCTAssertEqual(boxed.height, 180)
        // Content is 101x180 (90 * 180/160 = 101.25), centred: columns 109..<210.
        XCTAssertTrue(boxed[x: 108, y: 90] == (0, 0, 0))
        XCTAssertTrue(boxed[x: 109, y: 90] == (50, 60, 70))
        XCTAssertTrue(boxed[x: 209, y: 0] == (50, 60, 70))
        XCTAssertTrue(boxed[x: 210, y: 179] == (0, 0, 0))
    }

    func testResizeRejectsEmptySizes() throws {
        let source = try RGBImage(width: 2, height: 2)
        XCTAssertThrowsError(try source.resized(width: 0, height: 2))
        XCTAssertThrowsError(try RGBImage(width: 0, height: 0).resized(width: 2, height: 2))
    }

    func testCHWFloatsRoundTripAndClamp() throws {
        let source = try RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 10, 20, 30])
        let floats = source.toCHWFloats()
        XCTAssertEqual(floats.count, 6)
        // Planar: R plane (0, 10), G plane (128, 20), B plane (255, 30).
        XCTAssertEqual(floats[0], -1)
        XCTAssertEqual(floats[4], 1)
        XCTAssertEqual(floats[1], 10 / 127.5 - 1, accuracy: 1e-6)
        XCTAssertEqual(floats[2], 128 / 127.5 - 1, accuracy: 1e-6)
        XCTAssertEqual(try RGBImage(chwFloats: floats, width: 2, height: 1), source)

        let clamped = try RGBImage(chwFloats: [2, -3, .nan, .infinity, -.infinity, 0], width: 2, height: 1)
        // R plane (2, -3) → (255, 0); G plane (NaN, +inf) → (0, 255); B plane (-inf, 0) → (0, 128).
        XCTAssertEqual(clamped.pixels, [255, 0, 0, 0, 255, 128])
        XCTAssertThrowsError(try RGBImage(chwFloats: [0, 0], width: 2, height: 1))
    }
}
