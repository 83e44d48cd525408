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

    func testWorldRejectsABadSplit() throws {
        let run = try CLITests.run(["world", "--out", "/tmp/never", "--images", "1", "--split", "test"])
        XCTAssertEqual(run.status, 64)
        XCTAssertTrue(run.stderr.contains("--split"), run.stderr)
    }
}
