import Adapters
import Checkpoints
import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// The plain LoRA baseline: one adapter on MotionDirector's spatial and temporal layers, trained on
/// whole clips with plain MSE; its files, its loss, resume and bad input.
final class PlainMotionLoRATests: XCTestCase {
    private var folders: [String] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    private func folder(_ name: String) -> String {
        let path = Support.temporaryFolder(name)
        folders.append(path)
        return path
    }

    private func newRun(_ folder: String, config: MotionDirectorConfig, clips: [MotionTrainingClip]) throws -> PlainMotionLoRATraining {
        let pipeline = try Support.pipeline()
        return try PlainMotionLoRATraining(newRunIn: folder, pipeline: pipeline, config: config, clips: clips,
                                           baseModel: Support.identity(pipeline))
    }

    func testOneAdapterOnSpatialAndTemporalLayersLearnsFromWholeClips() throws {
        let out = folder("plain")
        let run = try newRun(out, config: Support.config(steps: 2), clips: Support.clips(2, frames: 3))
        XCTAssertEqual(run.adapters.adapterNames, [PlainMotionLoRATraining.adapterName])
        let paths = try run.adapters.loras(of: "plain").map(\.modulePath)
        let temporal = paths.filter { $0.hasPrefix("transformer_in.") || $0.contains(".temp_attentions.") }
        let spatial = paths.filter { $0.contains(".attentions.") }
        XCTAssertEqual(temporal.count + spatial.count, paths.count, "\(paths)")
        // Exactly MotionDirector's two target sets, together.
        let director = try MotionDirectorAdapters(unet: Support.pipeline().unet, spatialCount: 1, temporal: true,
                                                  config: LoRAConfig(rank: 2), generator: RandomGenerator(seed: 0))
        XCTAssertEqual(Set(temporal), Set(try director.set.loras(of: "temporal").map(\.modulePath)))
        XCTAssertEqual(Set(spatial), Set(try director.set.loras(of: "spatial-0").map(\.modulePath)))
        XCTAssertFalse(spatial.contains { $0.contains("attn2") }, "no cross-attention")
        // The split's settings are recorded as what the plain run does.
        XCTAssertEqual(run.config.debiasBeta, 0)
        XCTAssertEqual(run.config.randomHorizontalFlip, -1)
        XCTAssertEqual(run.config.spatialLoRAOffProbability, 0)

        // One loss over the whole clip reaches spatial and temporal factors alike.
        try Support.makeVisible(run.adapters, ["plain"], seed: 3)
        var random = RandomGenerator(seed: 9)
        let loss = try run.loss(step: 0, random: &random)
        XCTAssertEqual(loss.shape, [])
        try loss.backward()
        let gradients = try Support.gradients(run.adapters, ["plain"])
        for (key, gradient) in gradients {
            let values = try XCTUnwrap(gradient, "\(key) has no gradient")
            XCTAssertTrue(values.contains { $0 != 0 }, "\(key): zero gradient")
        }
        try Support.clearGradients(run.adapters, ["plain"])
        for lora in try run.adapters.loras(of: "plain") { try lora.up.assign(Tensor(zeros: lora.up.shape)) }

        let written = try run.run()
        XCTAssertEqual(written, out + "/plain.safetensors")
        for file in ["plain_run.json", "latents.safetensors", "loss.csv", "checkpoint-000002/model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let ups = try run.adapters.loras(of: "plain").map(\.up)
        XCTAssertTrue(ups.filter { $0.values.contains { $0 != 0 } }.count == ups.count, "every factor B moved away from 0")
        let file = try SafeTensorsFile(path: written)
        XCTAssertEqual(file.metadata["method"], "plain-motion-lora")
        XCTAssertTrue(file.names.contains("unet.transformer_in.transformer_blocks.0.attn1.to_q.lora_A.weight"))
        XCTAssertTrue(file.names.contains { $0.contains(".attentions.") && $0.hasSuffix("attn1.to_q.lora_B.weight") })

        let pipeline = try Support.pipeline()
        let reloaded = AdapterSet(model: pipeline.unet)
        let report = try reloaded.load(written, as: "plain", expectedBaseModel: Support.identity(pipeline))
        XCTAssertEqual(report.metadata.training["steps"], JSONValue.number(Double(2)))
        XCTAssertEqual(try Support.values(reloaded, ["plain"]), try Support.values(run.adapters, ["plain"]))
    }

    /// Stopped after step 3 (the checkpoint of step 2 is the newest), resumed, the run ends with the
    /// adapter of an uninterrupted run, bit for bit.
    func testResumeAfterInterruptionEqualsAnUninterruptedRun() throws {
        let clips = Support.clips(2, frames: 3)
        let config = Support.config(steps: 5, checkpointEvery: 2)
        let whole = try newRun(folder("whole"), config: config, clips: clips)
        try whole.run()
        let expected = try Support.values(whole.adapters, ["plain"])

        struct Interrupted: Error {}
        let out = folder("interrupted")
        let first = try newRun(out, config: config, clips: clips)
        first.training.onStep = { report in if report.step == 3 { throw Interrupted() } }
        XCTAssertThrowsError(try first.run()) { XCTAssertTrue($0 is Interrupted, "\($0)") }
        XCTAssertEqual(TrainerCheckpoint.latest(in: out)?.step, 2)

        let pipeline = try Support.pipeline()
        let resumed = try PlainMotionLoRATraining(resumingIn: out, pipeline: pipeline, baseModel: Support.identity(pipeline))
        XCTAssertEqual(resumed.completedSteps, 2)
        try resumed.run()
        XCTAssertEqual(try Support.values(resumed.adapters, ["plain"]), expected)
        XCTAssertNotEqual(expected, try Support.values(first.adapters, ["plain"]), "the interrupted run had not finished")
    }

    func testBadInputIsNamed() throws {
        XCTAssertThrowsError(try newRun(folder("none"), config: Support.config(steps: 1), clips: [])) { error in
            XCTAssertTrue("\(error)".contains("no clips"), "\(error)")
        }
        let used = folder("used")
        try newRun(used, config: Support.config(steps: 1), clips: Support.clips(1, frames: 3)).run()
        XCTAssertThrowsError(try newRun(used, config: Support.config(steps: 1), clips: Support.clips(1, frames: 3))) { error in
            XCTAssertTrue("\(error)".contains("already holds a plain LoRA run"), "\(error)")
        }
        let pipeline = try Support.pipeline()
        XCTAssertThrowsError(try PlainMotionLoRATraining(resumingIn: used, pipeline: pipeline, baseModel: Support.identity(pipeline)) {
            $0.loraRank = 4
        }) { error in
            XCTAssertTrue("\(error)".contains("only the step count"), "\(error)")
        }
        // A MotionDirector run is not a plain one, and the other way round.
        let director = folder("director")
        _ = try MotionDirectorTraining(newRunIn: director, pipeline: Support.pipeline(), config: Support.config(steps: 1),
                                       clips: Support.clips(1, frames: 3), baseModel: Support.identity(pipeline))
        XCTAssertThrowsError(try PlainMotionLoRATraining(resumingIn: director, pipeline: pipeline, baseModel: Support.identity(pipeline))) { error in
            XCTAssertTrue("\(error)".contains("holds no plain LoRA run to resume (no plain_run.json)"), "\(error)")
        }
        XCTAssertThrowsError(try MotionDirectorTraining(resumingIn: used, pipeline: pipeline, baseModel: Support.identity(pipeline))) { error in
            XCTAssertTrue("\(error)".contains("holds no MotionDirector run to resume"), "\(error)")
        }
        XCTAssertEqual(try MotionDirectorTraining.recordedConfig(in: director).maxTrainSteps, 1)
    }
}
