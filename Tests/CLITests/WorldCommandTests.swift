import Foundation
import XCTest

final class WorldCommandTests: XCTestCase {
    func testWorldWritesImagesClipsAndCaptionsDeterministically() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("world-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        let a = base.appendingPathComponent("a").path, b = base.appendingPathComponent("b").path
        for out in [a, b] {
            let run = try CLITests.run(["world", "--out", out, "--images", "3", "--clips", "2", "--split", "heldout", "--seed", "5"])
            XCTAssertEqual(run.status, 0, run.stderr)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: a + "/images").sorted()
        XCTAssertEqual(files, ["00000.png", "00000.txt", "00001.png", "00001.txt", "00002.png", "00002.txt"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: a + "/clips/00001.mp4"))
        let lines = try String(contentsOfFile: a + "/captions.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        let caption = try String(contentsOfFile: a + "/images/00000.txt", encoding: .utf8)
        XCTAssertTrue(caption.hasSuffix("background\n"), caption)
        for file in ["images/00000.png", "clips/00000.mp4", "captions.jsonl"] {
            XCTAssertEqual(FileManager.default.contents(atPath: a + "/" + file), FileManager.default.contents(atPath: b + "/" + file), file)
        }
    }

    func testWorldWritesOneConceptOrOneStyle() throws {
        let folder = NSTemporaryDirectory() + "customize-world-one-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cat = try CLITests.run(["world", "--concept", "cat", "--images", "3", "--out", folder + "/cat"])
        XCTAssertEqual(cat.status, 0, cat.stderr)
        XCTAssertTrue(cat.stdout.contains("3 images of the concept cat"), cat.stdout)
        for index in 0..<3 {
            let caption = try String(contentsOfFile: folder + "/cat/0000\(index).txt", encoding: .utf8)
            XCTAssertTrue(caption.contains(" cat on "), caption)
        }
        let neon = try CLITests.run(["world", "--style", "neon", "--images", "2", "--out", folder + "/neon"])
        XCTAssertEqual(neon.status, 0, neon.stderr)
        XCTAssertTrue(try String(contentsOfFile: folder + "/neon/00001.txt", encoding: .utf8).contains("in neon style"))
        for (arguments, message) in [(["--concept", "bird", "--images", "1"], "--concept expects one of cat, dog, robot"),
                                     (["--style", "neon", "--clips", "1"], "--style writes still images"),
                                     (["--concept", "cat", "--style", "neon", "--images", "1"], "give one of --motion, --concept and --style")] {
            let run = try CLITests.run(["world", "--out", folder + "/bad"] + arguments)
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    func testWorldRejectsABadSplit() throws {
        let run = try CLITests.run(["world", "--out", "/tmp/never", "--images", "1", "--split", "test"])
        XCTAssertEqual(run.status, 64)
        XCTAssertTrue(run.stderr.contains("--split"), run.stderr)
    }
}
