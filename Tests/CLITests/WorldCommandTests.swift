import Foundation
import World
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

    /// `--core` writes the core world's split in the usual layout: one core object, plain, on a
    /// plain background of another core colour; heldout draws only the core held-out pairs; each
    /// line of captions.jsonl says "world": "core". With the reserved split or one of the
    /// single-subject options it is refused, naming the options.
    func testWorldCoreWritesTheCoreWorldAndRefusesWhatIsNotInIt() throws {
        let folder = NSTemporaryDirectory() + "customize-world-core-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for split in ["train", "heldout"] {
            let run = try CLITests.run(["world", "--core", "--split", split, "--out", folder + "/" + split, "--images", "6", "--clips", "3", "--seed", "2"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stdout.contains("6 images and 3 clips of the core world's \(split) split"), run.stdout)
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/\(split)/images/00005.png"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/\(split)/clips/00002.mp4"))
            let lines = try String(contentsOfFile: folder + "/\(split)/captions.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 9)
            for line in lines {
                let entry = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                XCTAssertEqual(entry["world"] as? String, "core")
                XCTAssertEqual(entry["split"] as? String, split)
                let scene = try XCTUnwrap(entry["scene"] as? [String: Any])
                let objects = try XCTUnwrap(scene["objects"] as? [[String: Any]])
                XCTAssertEqual(objects.count, 1, String(line))
                let background = try XCTUnwrap(scene["background"] as? [String: String])
                let colour = try XCTUnwrap(NamedColour(rawValue: objects[0]["colour"] as? String ?? ""))
                let shape = try XCTUnwrap(ObjectShape(rawValue: objects[0]["kind"] as? String ?? ""))
                XCTAssertEqual(background["kind"], "plain")
                XCTAssertTrue(CoreWorld.backgroundColours.map(\.rawValue).contains(background["colour"] ?? ""), String(line))
                XCTAssertNotEqual(background["colour"], colour.rawValue)
                XCTAssertTrue(CoreWorld.colours.contains(colour) && CoreWorld.shapes.contains(shape), String(line))
                XCTAssertEqual(CoreWorld.isHeldOut(colour, shape), split == "heldout", String(line))
                XCTAssertEqual(objects[0]["texture"] as? String, "plain")
                XCTAssertTrue(["medium", "large"].contains(objects[0]["size"] as? String ?? ""), String(line))
                let caption = try XCTUnwrap(entry["caption"] as? String)
                let file = try XCTUnwrap(entry["file"] as? String)
                let text = try String(contentsOfFile: folder + "/\(split)/" + file.replacingOccurrences(of: ".png", with: ".txt").replacingOccurrences(of: ".mp4", with: ".txt"), encoding: .utf8)
                XCTAssertEqual(text, caption + "\n")
            }
        }
        // The customization sets take the core world's look: plain backgrounds of its colours,
        // core objects (medium or large, plain) where the set draws shapes.
        let coreBackgrounds = CoreWorld.backgroundColours.map { "on a \($0.rawValue) background" }
            + CoreWorld.backgroundColours.map { "on an \($0.rawValue) background" }
        for (arguments, subject) in [(["--motion", "zigzag", "--clips", "3"], "zigzagging quickly"), (["--concept", "cat", "--images", "4"], "cat"),
                                     (["--style", "neon", "--images", "4"], "neon")] {
            let set = folder + "/set-" + arguments[1]
            let run = try CLITests.run(["world", "--core", "--out", set, "--seed", "3"] + arguments)
            XCTAssertEqual(run.status, 0, run.stderr)
            let captions = try FileManager.default.contentsOfDirectory(atPath: set).filter { $0.hasSuffix(".txt") }
                .map { try String(contentsOfFile: set + "/" + $0, encoding: .utf8) }
            XCTAssertFalse(captions.isEmpty)
            for caption in captions {
                XCTAssertTrue(caption.contains(subject), caption)
                XCTAssertTrue(coreBackgrounds.contains { caption.contains($0) }, caption)
                XCTAssertFalse(caption.hasPrefix("a small"), caption)
            }
        }
        for (arguments, message) in [(["--split", "reserved", "--images", "1"], "leave out --core with --split reserved")] {
            let run = try CLITests.run(["world", "--core", "--out", folder + "/bad"] + arguments)
            XCTAssertEqual(run.status, 64, "\(arguments)")
            XCTAssertTrue(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad"))
    }

    /// `--core --tied-start` writes the tied-start variant (each line says its world); without
    /// `--core` it is refused.
    func testWorldTiedStartWritesItsVariantOfTheCoreWorld() throws {
        let folder = NSTemporaryDirectory() + "customize-world-tied-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let run = try CLITests.run(["world", "--core", "--tied-start", "--out", folder + "/tied", "--clips", "4", "--seed", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOfFile: folder + "/tied/captions.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        for line in lines {
            let entry = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(entry["world"] as? String, "core-tied-start")
        }
        let refused = try CLITests.run(["world", "--tied-start", "--out", folder + "/bad", "--clips", "1"])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--tied-start is a variant of the core world: add --core"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad"))
    }

    func testWorldRejectsABadSplit() throws {
        let run = try CLITests.run(["world", "--out", "/tmp/never", "--images", "1", "--split", "test"])
        XCTAssertEqual(run.status, 64)
        XCTAssertTrue(run.stderr.contains("--split"), run.stderr)
    }
}
