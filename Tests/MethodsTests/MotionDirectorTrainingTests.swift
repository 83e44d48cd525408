import Adapters
import Checkpoints
import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// Whole MotionDirector runs on the tiny pipeline: files, resume, the spatial-only mode, bad input.
final class MotionDirectorTrainingTests: XCTestCase {
    private var folders: [String] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    private func folder(_ name: String) -> String {
        let path = Support.temporaryFolder(name)
        folders.append(path)
        return path
    }

    private func newRun(_ folder: String, config: MotionDirectorConfig, clips: [MotionTrainingClip]) throws -> MotionDirectorTraining {
        let pipeline = try Support.pipeline()
        return try MotionDirectorTraining(newRunIn: folder, pipeline: pipeline, config: config, clips: clips,
                                          baseModel: Support.identity(pipeline))
    }

    func testRunWritesFilesThatReloadBitExactly() throws {
        let out = folder("files")
        let run = try newRun(out, config: Support.config(steps: 2), clips: Support.clips(2, frames: 3))
        var logged: [LossRecord] = []
        run.training.onLog = { _, records in logged = records }
        let written = try run.run()
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent },
                       ["temporal.safetensors", "spatial-clip0.safetensors", "spatial-clip1.safetensors"])
        XCTAssertEqual(logged.map(\.step), [1, 2])
        for file in ["motion_run.json", "latents.safetensors", "loss.csv", "checkpoint-000002/model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        // The trained factors moved away from their start (B was 0).
        let temporalUp = try run.adapters.set.loras(of: "temporal").map(\.up)
        XCTAssertTrue(temporalUp.contains { $0.values.contains { $0 != 0 } })

        let pipeline = try Support.pipeline()
        let reloaded = AdapterSet(model: pipeline.unet)
        let report = try reloaded.load(out + "/temporal.safetensors", as: "temporal", expectedBaseModel: Support.identity(pipeline))
        XCTAssertNil(report.baseModelMismatch)
        XCTAssertEqual(report.metadata.method, "motiondirector-temporal")
        XCTAssertEqual(report.metadata.rank, 2)
        XCTAssertEqual(report.metadata.training["steps"], JSONValue.number(Double(2)))
        XCTAssertEqual(report.metadata.training["clips"], .array([.string("clip0.mp4"), .string("clip1.mp4")]))
        XCTAssertEqual(try Support.values(reloaded, ["temporal"]), try Support.values(run.adapters.set, ["temporal"]))
        let names = try SafeTensorsFile(path: out + "/spatial-clip1.safetensors").names
        XCTAssertTrue(names.allSatisfy { $0.hasPrefix("unet.") && ($0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora_B.weight")) })
        try reloaded.load(out + "/spatial-clip1.safetensors", as: "spatial")
        let spatialValues = try Support.values(reloaded, ["spatial"])
        let trainedValues = try Support.values(run.adapters.set, ["spatial-1"])
        XCTAssertEqual(spatialValues.count, trainedValues.count)
        for (key, value) in spatialValues {
            XCTAssertEqual(value, trainedValues[key.replacingOccurrences(of: "spatial/", with: "spatial-1/")], key)
        }
    }

    /// Stopped after step 3 (the checkpoint of step 2 is the newest), resumed, the run ends with the
    /// adapters of an uninterrupted run, bit for bit.
    func testResumeAfterInterruptionEqualsAnUninterruptedRun() throws {
        let clips = Support.clips(2, frames: 3)
        let config = Support.config(steps: 5, checkpointEvery: 2)

        let whole = try newRun(folder("whole"), config: config, clips: clips)
        try whole.run()
        let expected = try Support.values(whole.adapters.set, whole.adapters.trainedNames)

        struct Interrupted: Error {}
        let out = folder("interrupted")
        let first = try newRun(out, config: config, clips: clips)
        first.training.onStep = { report in if report.step == 3 { throw Interrupted() } }
        XCTAssertThrowsError(try first.run()) { XCTAssertTrue($0 is Interrupted, "\($0)") }
        XCTAssertEqual(TrainerCheckpoint.latest(in: out)?.step, 2)

        let pipeline = try Support.pipeline()
        let resumed = try MotionDirectorTraining(resumingIn: out, pipeline: pipeline, baseModel: Support.identity(pipeline))
        XCTAssertEqual(resumed.completedSteps, 2)
        try resumed.run()
        XCTAssertEqual(try Support.values(resumed.adapters.set, resumed.adapters.trainedNames), expected)
    }

    func testSingleImageModeTrainsOnlyOneSpatialLoRA() throws {
        var config = MotionDirectorConfig.singleImage
        config.loraRank = 2
        config.maxTrainSteps = 2
        let out = folder("image")
        let run = try newRun(out, config: config, clips: Support.clips(1, frames: 1))
        XCTAssertEqual(run.adapters.trainedNames, ["spatial-0"])
        let written = try run.run()
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent }, ["spatial-shared.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(path: written[0]).metadata["method"], "motiondirector-spatial")
    }

    func testSharedSpatialLoRAAndWeightDecayRule() throws {
        var config = Support.config(steps: 1)
        config.singleSpatialLoRA = true
        let run = try newRun(folder("shared"), config: config, clips: Support.clips(3, frames: 3))
        XCTAssertEqual(run.adapters.spatialNames, ["spatial-0"])
        XCTAssertEqual(run.training.trainer.options.adamWeightDecay, 1e-4)
        XCTAssertEqual(MotionDirectorConfig().weightDecay(clips: 1), 1e-2)
        XCTAssertEqual(MotionDirectorConfig().weightDecay(clips: 2), 1e-4)
    }

    func testEveryEpochVisitsEachClipOnce() throws {
        let run = try newRun(folder("order"), config: Support.config(steps: 1), clips: Support.clips(3, frames: 3))
        for epoch in 0..<4 {
            XCTAssertEqual(Set((0..<3).map { run.clipOrder(step: epoch * 3 + $0) }), [0, 1, 2])
        }
    }

    func testPreviewsRenderTheValidationPrompts() throws {
        var config = Support.config(steps: 2)
        config.validationSteps = 1
        config.validationData = .init(prompt: ["a dog"], samplePreview: true, numFrames: 2, numInferenceSteps: 2,
                                      guidanceScale: 3, spatialScale: 0.5, noisePrior: 0.3)
        let run = try newRun(folder("preview"), config: config, clips: Support.clips(1, frames: 3))
        var previews: [(Int, [PreviewSample])] = []
        run.onPreview = { previews.append(($0, $1)) }
        XCTAssertThrowsError(try run.run(), "a noise prior needs the clip's frame count") { error in
            XCTAssertTrue("\(error)".contains("initial latents"), "\(error)")
        }
        config.validationData.numFrames = nil
        let second = try newRun(folder("preview2"), config: config, clips: Support.clips(1, frames: 3))
        second.onPreview = { previews.append(($0, $1)) }
        try second.run()
        XCTAssertEqual(previews.map(\.0), [1, 2])
        XCTAssertEqual(previews[0].1.map(\.prompt), ["a dog"])
        XCTAssertEqual(previews[0].1[0].frames.count, 3)
        XCTAssertEqual(previews[0].1[0].frames[0].shape, [3, 16, 16])
    }

    func testBadInputIsNamed() throws {
        XCTAssertThrowsError(try newRun(folder("none"), config: Support.config(steps: 1), clips: [])) { error in
            XCTAssertTrue("\(error)".contains("no clips"), "\(error)")
        }
        var clips = Support.clips(2, frames: 3)
        clips[1].latents = Support.tensor([1, 4, 2, 8, 8], seed: 1)
        clips[1].flippedLatents = clips[1].latents
        XCTAssertThrowsError(try newRun(folder("frames"), config: Support.config(steps: 1), clips: clips)) { error in
            XCTAssertTrue("\(error)".contains("clip1.mp4: has 2 frames, the run samples 3"), "\(error)")
        }
        var config = Support.config(steps: 1)
        config.debiasBeta = -1
        XCTAssertThrowsError(try newRun(folder("beta"), config: config, clips: Support.clips(1, frames: 3))) { error in
            XCTAssertTrue("\(error)".contains("debias_beta"), "\(error)")
        }
        let used = folder("used")
        try newRun(used, config: Support.config(steps: 1), clips: Support.clips(1, frames: 3)).run()
        XCTAssertThrowsError(try newRun(used, config: Support.config(steps: 1), clips: Support.clips(1, frames: 3))) { error in
            XCTAssertTrue("\(error)".contains("already holds a MotionDirector run"), "\(error)")
        }
        let pipeline = try Support.pipeline()
        XCTAssertThrowsError(try MotionDirectorTraining(resumingIn: folder("missing"), pipeline: pipeline,
                                                        baseModel: Support.identity(pipeline))) { error in
            XCTAssertTrue("\(error)".contains("no MotionDirector run to resume"), "\(error)")
        }
        XCTAssertThrowsError(try MotionDirectorTraining(resumingIn: used, pipeline: pipeline, baseModel: Support.identity(pipeline)) {
            $0.loraRank = 4
        }) { error in
            XCTAssertTrue("\(error)".contains("only the step count"), "\(error)")
        }
    }

    func testLatentCacheRoundTripsAndEncodingFlipsPixels() throws {
        let pipeline = try Support.pipeline()
        let frames = Support.tensor([2, 3, 16, 16], seed: 4, scale: 0.5)
        let flipped = try MotionTrainingClip.flippedHorizontally(frames)
        XCTAssertEqual(flipped[flat: 0], frames[flat: 15])
        XCTAssertEqual(try MotionTrainingClip.flippedHorizontally(flipped).values, frames.values)
        let clips = try MotionTrainingClip.encode([MotionClipSource(name: "a.mp4", caption: "a cat", frames: frames)],
                                                  pipeline: pipeline, flips: true, seed: 1)
        XCTAssertEqual(clips[0].latents.shape, [1, 4, 2, 8, 8])
        XCTAssertEqual(clips[0].flippedLatents?.shape, [1, 4, 2, 8, 8])
        let path = folder("cache") + ".safetensors"
        try MotionTrainingClip.writeCache(clips, to: path)
        let read = try MotionTrainingClip.readCache(path)
        XCTAssertEqual(read[0].name, "a.mp4")
        XCTAssertEqual(read[0].caption, "a cat")
        XCTAssertEqual(read[0].latents.values, clips[0].latents.values)
        XCTAssertEqual(read[0].flippedLatents?.values, clips[0].flippedLatents?.values)
    }
}
