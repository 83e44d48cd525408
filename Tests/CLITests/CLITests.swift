import Foundation
import XCTest

/// End-to-end tests of the `customize` executable, run as a user would run it.
final class CLITests: XCTestCase {
    /// The built executable beside the test bundle (.build/<config>/customize).
    static var executable: URL {
        let bundle = Bundle(for: CLITests.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent(),
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        for folder in candidates {
            let url = folder.appendingPathComponent("customize")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return candidates[0].appendingPathComponent("customize")
    }

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    func testHelpListsSubcommandsWithExamples() throws {
        let result = try Self.run(["--help"])
        XCTAssertEqual(result.status, 0)
        for command in ["bench"] { XCTAssertTrue(result.stdout.contains(command), result.stdout) }
        XCTAssertTrue(result.stdout.contains("Examples:"))
    }

    func testUnknownOptionIsAUsageError() throws {
        let result = try Self.run(["bench", "engine", "--no-such-option"])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("no-such-option"), result.stderr)
    }

    /// OpenBLAS's kernels are chosen from the CPU's features unless the environment already chose,
    /// and sgemm under the chosen kernels agrees with a plain reference loop.
    func testOpenBLASCoreChoiceAndSgemmCheck() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let result = try Self.run(["bench", "engine", "--json", "--repeats", "1"],
                                  environment: ["OPENBLAS_CORETYPE": ""])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let error = report["sgemm_max_relative_error"] as! Double
        XCTAssertLessThan(error, 1e-5)
        let core = report["openblas_core"] as! String
        // The CPU model is reported as /proc/cpuinfo names it.
        let model = flags.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0[$0.index(after: $0.firstIndex(of: ":")!)...]).trimmingCharacters(in: .whitespaces) } ?? "unknown"
        XCTAssertEqual(report["cpu_model"] as? String, model.isEmpty ? "unknown" : model)
        if flags.contains(" avx2") {
            XCTAssertNotEqual(core.lowercased(), "prescott", "OPENBLAS_CORETYPE was not chosen from the CPU")
        }
        // A value set by the environment is respected as it is.
        let forced = try Self.run(["bench", "engine", "--json", "--repeats", "1"], environment: ["OPENBLAS_CORETYPE": "PRESCOTT"])
        let forcedReport = try JSONSerialization.jsonObject(with: Data(forced.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((forcedReport["openblas_core"] as! String).lowercased(), "prescott")
        XCTAssertLessThan(forcedReport["sgemm_max_relative_error"] as! Double, 1e-5)
    }

    /// Idle OpenBLAS threads are told to sleep soon (OPENBLAS_THREAD_TIMEOUT 4) unless the
    /// environment set the timeout itself, whether or not it also set the core type.
    func testOpenBLASThreadTimeoutChoice() throws {
        func timeout(_ environment: [String: String]) throws -> Int? {
            let result = try Self.run(["bench", "engine", "--json", "--repeats", "1"], environment: environment)
            XCTAssertEqual(result.status, 0, result.stderr)
            let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
            return report["openblas_thread_timeout"] as? Int
        }
        XCTAssertEqual(try timeout(["OPENBLAS_THREAD_TIMEOUT": ""]), 4)
        XCTAssertEqual(try timeout(["OPENBLAS_THREAD_TIMEOUT": "", "OPENBLAS_CORETYPE": "PRESCOTT"]), 4)
        XCTAssertEqual(try timeout(["OPENBLAS_THREAD_TIMEOUT": "12"]), 12)
    }
}
