import Adapters
import Checkpoints
import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// Subject LoRA runs on the tiny pipeline: targets, crop jitter, files, resume.
final class SubjectLoRATests: XCTestCase {
    private var folders: [String] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    /// Two images of 10×10 latents: the 8×8 model size plus one latent pixel each way.
    private func images() -> [MotionTrainingClip] {
        (0..<2).map { index in
            MotionTrainingClip(name: "img\(index).png", caption: "a photo of <cat> cat",
                               latents: Support.tensor([1, 4, 1, 10, 10], seed: 40 + UInt64(index)),
                               flippedLatents: Support.tensor([1, 4, 1, 10, 10], seed: 50 + UInt64(index)))
        }
    }

    private func run(_ name: String, steps: Int, checkpointEvery: Int = 100) throws -> (SubjectLoRATraining, String) {
        let folder = Support.temporaryFolder(name)
        folders.append(folder)
        let pipeline = try Support.pipeline()
        let config = SubjectLoRAConfig(rank: 2, maxTrainSteps: steps, checkpointingSteps: checkpointEvery, validationSteps: 0)
        let training = try SubjectLoRATraining(newRunIn: folder, pipeline: pipeline, config: config, images: images(), token: "<cat>",
                                               className: "cat", baseModel: Support.identity(pipeline))
        return (training, folder)
    }

    /// Ours, from pilots on the shipped base: 1e-3 × 2 000 steps (5e-4 × 300 drew the cat as a blob).
    func testDefaults() {
        let config = SubjectLoRAConfig()
        XCTAssertEqual(config.rank, 16)
        XCTAssertEqual(config.learningRate, 1e-3)
        XCTAssertEqual(config.maxTrainSteps, 2000)
        XCTAssertEqual(config.checkpointingSteps, 200)
        XCTAssertEqual(config.validationSteps, 500)
    }

    func testTargetsAreSpatialTransformersOnly() throws {
        let (training, _) = try run("targets", steps: 1)
        let paths = try training.adapters.loras(of: SubjectLoRATraining.adapterName).map(\.modulePath)
        XCTAssertTrue(paths.allSatisfy { $0.contains(".attentions.") })
        XCTAssertTrue(paths.contains { $0.hasSuffix("attn2.to_k") } && paths.contains { $0.hasSuffix("attn1.to_q") }
                      && paths.contains { $0.hasSuffix("ff.net.2") })
        XCTAssertEqual(training.subjectPrompt, "a <cat> cat")
    }

    func testLossTrainsOnlyTheLoRA() throws {
        let (training, _) = try run("loss", steps: 1)
        var random = RandomGenerator(seed: 1)
        let loss = try training.loss(step: 0, random: &random)
        try loss.backward()
        XCTAssertTrue(try training.adapters.parameters(of: SubjectLoRATraining.adapterName).allSatisfy { $0.tensor.grad != nil })
        XCTAssertTrue(training.pipeline.unet.namedParameters().allSatisfy { $0.tensor.grad == nil })
    }

    func testFileReloadsAndResumeMatchesAnUninterruptedRun() throws {
        let (whole, wholeFolder) = try run("whole", steps: 4, checkpointEvery: 2)
        let output = wholeFolder + "/subject.safetensors"
        try whole.run(output: output)
        let reloaded = AdapterSet(model: try Support.pipeline().unet)
        let report = try reloaded.load(output, as: "s")
        XCTAssertEqual(report.metadata.method, "subject-lora")
        XCTAssertEqual(report.metadata.training["token"], .string("<cat>"))
        let trained = try Support.values(whole.adapters, [SubjectLoRATraining.adapterName])
        for (key, value) in try Support.values(reloaded, ["s"]) {
            XCTAssertEqual(value, trained[key.replacingOccurrences(of: "s/", with: "subject/")], key)
        }

        struct Interrupted: Error {}
        let (first, folder) = try run("interrupted", steps: 4, checkpointEvery: 2)
        first.training.onStep = { if $0.step == 3 { throw Interrupted() } }
        XCTAssertThrowsError(try first.run(output: folder + "/subject.safetensors"))
        let pipeline = try Support.pipeline()
        let resumed = try SubjectLoRATraining(resumingIn: folder, pipeline: pipeline, baseModel: Support.identity(pipeline))
        XCTAssertEqual(resumed.training.step, 2)
        try resumed.run(output: folder + "/subject.safetensors")
        XCTAssertEqual(try Support.values(resumed.adapters, [SubjectLoRATraining.adapterName]), trained)
    }

    func testBadInputIsNamed() throws {
        let pipeline = try Support.pipeline()
        var small = images()
        small[1].latents = Support.tensor([1, 4, 1, 8, 8], seed: 1)
        XCTAssertThrowsError(try SubjectLoRATraining(newRunIn: Support.temporaryFolder("bad"), pipeline: pipeline, config: SubjectLoRAConfig(),
                                                     images: small, token: "<x>", className: nil,
                                                     baseModel: Support.identity(pipeline))) { error in
            XCTAssertTrue("\(error)".contains("img1.png"), "\(error)")
        }
        XCTAssertThrowsError(try SubjectLoRATraining(newRunIn: Support.temporaryFolder("none"), pipeline: pipeline, config: SubjectLoRAConfig(),
                                                     images: [], token: "<x>", className: nil,
                                                     baseModel: Support.identity(pipeline))) { error in
            XCTAssertTrue("\(error)".contains("no images"), "\(error)")
        }
    }
}
