import ArgumentParser
import Dispatch
import Evaluation
import Foundation
import Media
import World

/// `customize world`: writes samples of the synthetic world as PNG images and MP4 clips with captions.
struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Write images and clips of the synthetic world, with captions.",
        discussion: """
        Each sample is written with a caption file beside it (00000.png + 00000.txt), the layout the \
        training commands read; captions.jsonl lists every sample with its full scene description. \
        Splits: train (pretraining), heldout (colour-shape pairs never in pretraining), reserved \
        (motions, concepts and styles kept for customization).

        --motion NAME writes --clips clips of that one motion, each by a different object on a \
        different background, straight into --out (00000.mp4 + 00000.txt, …): the folder layout \
        train-motion reads. Motions: \(Motion.allCases.map(\.rawValue).joined(separator: ", ")) \
        (zigzag, orbit and bounce are reserved: never in pretraining).

        --concept NAME writes --images images of that one reserved concept (\(Concept.allCases.map(\.rawValue).joined(separator: ", "))) \
        in varied places, sizes and backgrounds, and --style NAME images of varied shapes drawn in \
        that reserved style (\(Style.allCases.map(\.rawValue).joined(separator: ", "))), straight into --out: the \
        folder layout train-lora, train-content and train-style read.

        --core draws the core world, the base's pretraining distribution, instead of the full one: \
        one plain medium or large object (\(CoreWorld.shapes.map(\.rawValue).joined(separator: ", "))) \
        coloured \(CoreWorld.colours.map(\.rawValue).joined(separator: ", ")), on a plain background \
        (\(CoreWorld.backgroundColours.map(\.rawValue).joined(separator: ", ")); never the object's colour), \
        in clips still or moving left, right, up or down across 0.40 of the frame. Its splits are train \
        and heldout (\(CoreWorld.heldOutPairs.count) colour-shape pairs never in its train split); \
        the reserved split is the full world's. With --core, the --motion, --concept and --style \
        sets take the core world's look (plain backgrounds of its colours; core objects, medium or \
        large, plain, at its speed), as adapters for a core-world base need. \
        --tied-start (with --core) starts each moving object on the side it moves away from (the \
        "core-tied-start" world of a pretraining pilot).

        Examples:
          customize world --out world/ --images 16 --clips 4 --split reserved --seed 1
          customize world --core --out core/ --images 16 --clips 4 --split heldout
          customize world --core --motion zigzag --clips 3 --out samples/clips
          customize world --core --concept cat --images 8 --out samples/concepts/cat
          customize world --core --style neon --images 8 --out samples/styles/neon
        """)

    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Number of still images.") var images = 0
    @Option(help: "Number of clips.") var clips = 0
    @Option(help: "Which part of the world: train, heldout or reserved (default train).") var split: String?
    @Flag(help: "Draw the core world (the base's pretraining distribution): --split train or heldout.") var core = false
    @Flag(help: "With --core: each moving object starts on the side it moves away from.") var tiedStart = false
    @Option(help: "Write clips of this one motion only, straight into --out (e.g. zigzag).") var motion: String?
    @Option(help: "Write images of this one reserved concept only, straight into --out (e.g. cat).") var concept: String?
    @Option(help: "Write images in this one reserved style only, straight into --out (e.g. neon).") var style: String?
    @Option(help: "Seed; sample i of a split depends only on (seed, split, i).") var seed: UInt64 = 0
    @Option(help: "Frames per clip: 8 or 16.") var frames = 8
    @Option(help: "Frames per second of the MP4 clips.") var fps: Double = 8

    func validate() throws {
        if let split, Split(rawValue: split) == nil {
            throw ValidationError("--split expects one of \(Split.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(split)\"")
        }
        if tiedStart, !core { throw ValidationError("--tied-start is a variant of the core world: add --core") }
        if core {
            guard split != Split.reserved.rawValue else {
                throw ValidationError("--core draws the train and heldout splits only; the reserved split is the full world's: leave out --core with --split reserved")
            }
        }
        if let motion {
            guard Motion(rawValue: motion) != nil else {
                throw ValidationError("--motion expects one of \(Motion.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(motion)\"")
            }
            guard images == 0, split == nil else {
                throw ValidationError("--motion writes clips of one motion; leave out --images and --split")
            }
            guard clips > 0 else { throw ValidationError("--motion needs --clips N (at least 1)") }
        }
        guard [motion, concept, style].compactMap({ $0 }).count <= 1 else {
            throw ValidationError("give one of --motion, --concept and --style")
        }
        for (option, value, names) in [("--concept", concept, Concept.allCases.map(\.rawValue)), ("--style", style, Style.allCases.map(\.rawValue))] {
            guard let value else { continue }
            guard names.contains(value) else {
                throw ValidationError("\(option) expects one of \(names.joined(separator: ", ")), got \"\(value)\"")
            }
            guard clips == 0, split == nil else {
                throw ValidationError("\(option) writes still images of one reserved \(option.dropFirst(2)); leave out --clips and --split")
            }
            guard images > 0 else { throw ValidationError("\(option) needs --images N (at least 1)") }
        }
        guard images >= 0, clips >= 0, images + clips > 0 else {
            throw ValidationError("ask for at least one sample with --images N and/or --clips M")
        }
        guard frames == 8 || frames == 16 else { throw ValidationError("--frames expects 8 or 16, got \(frames)") }
        guard fps > 0 else { throw ValidationError("--fps must be positive, got \(fps)") }
    }

    func run() throws {
        let split = Split(rawValue: self.split ?? "train")!
        let sampler = WorldSampler(seed: seed, clipFrames: frames, distribution: distribution)
        let folder = URL(fileURLWithPath: out)
        let renderer = Renderer()
        var index: [String] = []
        let progress = ProgressReporter("world", total: images + clips, unit: "sample")
        var done = 0

        func write(_ samples: [WorldSample], subfolder: String, isClip: Bool) throws {
            guard !samples.isEmpty else { return }
            let directory = subfolder.isEmpty ? folder : folder.appendingPathComponent(subfolder)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // Render in parallel (pure and deterministic), write in order.
            let batch = 16
            for start in stride(from: 0, to: samples.count, by: batch) {
                let chunk = Array(samples[start..<min(start + batch, samples.count)])
                var rendered = [[[UInt8]]](repeating: [], count: chunk.count)
                rendered.withUnsafeMutableBufferPointer { slots in
                    let slotsPointer = slots.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: chunk.count) { i in
                        slotsPointer[i] = renderer.render(chunk[i].spec)
                    }
                }
                for (offset, sample) in chunk.enumerated() {
                    let name = String(format: "%05d", start + offset)
                    let frames = try rendered[offset].map { try RGBImage(width: renderer.side, height: renderer.side, pixels: $0) }
                    let file = name + (isClip ? ".mp4" : ".png")
                    let path = directory.appendingPathComponent(file).path
                    if isClip {
                        try VideoWriter.write(frames, to: path, options: .init(fps: fps))
                    } else {
                        try PNGImage.write(frames[0], to: path, text: [("caption", sample.caption), ("seed", String(seed)), ("split", sample.split.rawValue)]
                                           + (core ? [("world", distribution.rawValue)] : []))
                    }
                    try atomicWrite(sample.caption + "\n", to: directory.appendingPathComponent(name + ".txt").path)
                    index.append(try jsonLine(file: subfolder.isEmpty ? file : subfolder + "/" + file, sample: sample))
                    done += 1
                    progress.update(done)
                }
            }
        }

        if let motion = motion.flatMap(Motion.init(rawValue:)) {
            try write(sampler.motionClips(motion, count: clips), subfolder: "", isClip: true)
            try atomicWrite(index.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("captions.jsonl").path)
            print("wrote \(clips) clips of the motion \(motion.rawValue) (\(motion.isReserved ? "reserved" : "train") split) to \(out)")
            return
        }
        let single: (samples: [WorldSample], what: String)? =
            if let concept = concept.flatMap(Concept.init(rawValue:)) { (sampler.conceptImages(concept, count: images), "the concept \(concept.rawValue)") }
            else if let style = style.flatMap(Style.init(rawValue:)) { (sampler.styleImages(style, count: images), "the style \(style.rawValue)") }
            else { nil }
        if let single {
            try write(single.samples, subfolder: "", isClip: false)
            try atomicWrite(index.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("captions.jsonl").path)
            print("wrote \(images) images of \(single.what) (reserved split) to \(out)")
            return
        }
        try write((0..<images).map { sampler.image(split, index: $0) }, subfolder: "images", isClip: false)
        try write((0..<clips).map { sampler.clip(split, index: $0) }, subfolder: "clips", isClip: true)
        try atomicWrite(index.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("captions.jsonl").path)
        print("wrote \(images) images and \(clips) clips of the \(core ? "core world's " : "")\(split.rawValue) split to \(out)")
    }

    private var distribution: WorldSampler.Distribution { tiedStart ? .coreTiedStart : core ? .core : .full }

    private func jsonLine(file: String, sample: WorldSample) throws -> String {
        // "world" only for the core world, so the full world's lines stay as they were.
        struct Line: Encodable { let file: String; let caption: String; let split: String; let world: String?; let scene: SceneSpec }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let line = Line(file: file, caption: sample.caption, split: sample.split.rawValue, world: core ? distribution.rawValue : nil, scene: sample.spec)
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }
}
