import ArgumentParser
import Foundation
import Tensor

/// `customize bench …`: speed figures measured in one run, as ratios to baselines from the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed: the tensor engine's hot paths.",
        discussion: "Example: customize bench engine --json",
        subcommands: [BenchEngine.self])
}

struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads for the engine and OpenBLAS (default: all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
            Parallel.threadCount = threads
        } else {
            Parallel.threadCount = Parallel.threadCount
        }
    }
}

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "GFLOP/s and GB/s of sgemm, conv, attention, linear, element-wise and norm kernels.",
        discussion: "Example: customize bench engine --json")

    @OptionGroup var threadOptions: ThreadOptions
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per case (the median is reported).") var repeats = 5

    func run() throws {
        try threadOptions.apply()
        let benchmark = EngineBenchmark(repeats: max(1, repeats))
        let report = try benchmark.run { stage in
            if !json { FileHandle.standardError.write("bench engine: \(stage)…\n") }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("OpenBLAS core: \(report.openblasCore)   threads: \(report.threads)   "
              + "sgemm check: max rel. error \(report.sgemmMaxRelativeError)")
        print("case".padding(toLength: 52, withPad: " ", startingAt: 0) + "      ms   throughput   fraction   bar")
        for r in report.results {
            let fraction = r.fractionOfBaseline.map { String(format: "%5.2f", $0) } ?? "     "
            let bar = r.bar.map { String(format: "≥%.1f %@", $0, (r.fractionOfBaseline ?? 0) >= $0 ? "ok" : "MISSED") } ?? ""
            print(r.name.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + String(format: "%8.3f  %7.1f %@  %@      %@", r.milliseconds, r.throughput, r.unit, fraction, bar))
        }
    }
}
