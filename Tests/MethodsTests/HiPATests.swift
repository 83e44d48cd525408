import Adapters
import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// HiPA: the high-pass operators, the one-step x̂₀, teacher pairs and resumable training.
final class HiPATests: XCTestCase {
    private var folders: [String] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    func testFFTHighPassRemovesConstantsAndKeepsTheHighestFrequency() throws {
        let filter = try HighFrequencyLoss(height: 4, width: 4, cutoff: 0.5)
        let constant = Tensor(repeating: 3, shape: [1, 1, 1, 4, 4])
        XCTAssertTrue(try filter.fftHighPass(constant).values.allSatisfy { abs($0) < 1e-5 })
        // The checkerboard is the Nyquist frequency in both axes: it passes unchanged.
        let checker = try Tensor(shape: [1, 1, 1, 4, 4], values: (0..<16).map { Float((($0 / 4) + ($0 % 4)) % 2 == 0 ? 1 : -1) })
        for (a, b) in zip(try filter.fftHighPass(checker).values, checker.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // A projection: applying it twice changes nothing more.
        let x = Support.tensor([2, 16], seed: 3)
        let once = try Tensor.matmul(x, filter.highPass), twice = try Tensor.matmul(once, filter.highPass)
        for (a, b) in zip(once.values, twice.values) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // The Laplacian of a constant is zero inside (the border sees the zero padding).
        let edges = try filter.edges(constant).values
        XCTAssertEqual(edges[5], 0)
        XCTAssertEqual(edges[0], -6)
    }

    func testHighFrequencyEnergyMatchesTheFilter() throws {
        let filter = try HighFrequencyLoss(height: 6, width: 5)
        let x = Support.tensor([2, 6, 5], seed: 8)
        let filtered = try filter.fftHighPass(x).values.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(HighFrequencyLoss.highFrequencyEnergy(x), filtered, accuracy: 1e-4 * max(1, filtered))
        XCTAssertEqual(HighFrequencyLoss.highFrequencyEnergy(Tensor(repeating: 2, shape: [3, 4, 4])), 0, accuracy: 1e-9)
    }

    func testLossIsZeroAtTheTargetAndWeightsTheHighFrequencies() throws {
        let target = Support.tensor([1, 4, 1, 8, 8], seed: 1), prediction = Support.tensor([1, 4, 1, 8, 8], seed: 2)
        let plain = try HighFrequencyLoss(height: 8, width: 8, weight: 0), weighted = try HighFrequencyLoss(height: 8, width: 8, weight: 1)
        XCTAssertEqual(try weighted.loss(prediction: target, target: target).item, 0)
        XCTAssertEqual(try plain.loss(prediction: prediction, target: target).item, try Tensor.mseLoss(prediction, target).item)
        XCTAssertGreaterThan(try weighted.loss(prediction: prediction, target: target).item, try plain.loss(prediction: prediction, target: target).item)
    }

    func testOneStepOriginalSampleInvertsTheNoising() throws {
        let pipeline = try Support.pipeline()
        let config = pipeline.schedulerConfig
        let t = OneStepSampler.timestep(config)
        XCTAssertEqual(t, config.numTrainTimesteps - 1)
        let x0 = Support.tensor([1, 4, 1, 8, 8], seed: 5), epsilon = Support.tensor([1, 4, 1, 8, 8], seed: 6)
        let noisy = try DDPMScheduler(config: config).addNoise(original: x0, noise: epsilon, timesteps: [t])
        guard config.predictionType == .epsilon else { return }
        let recovered = try OneStepSampler.originalSample(output: epsilon, noise: noisy, config: config)
        for (a, b) in zip(recovered.values, x0.values) { XCTAssertEqual(a, b, accuracy: 2e-3) }
    }

    func testTrainingLearnsAndResumesBitExactly() throws {
        var config = HiPAConfig(rank: 2, learningRate: 1e-3, maxTrainSteps: 4, checkpointingSteps: 2, pairs: 2, teacherSteps: 2)
        config.teacherGuidance = 3
        let pipeline = try Support.pipeline()
        let pairs = try TeacherPair.generate(pipeline: pipeline, prompts: ["a red star", "a blue ball"], config: config)
        XCTAssertEqual(pairs.count, 2)
        XCTAssertEqual(pairs[0].noise.shape, pipeline.latentShape(frames: 1))
        XCTAssertNotEqual(pairs[0].noise.values, pairs[1].noise.values)
        func run(_ name: String) throws -> HiPATraining {
            let folder = Support.temporaryFolder(name)
            folders.append(folder)
            return try HiPATraining(newRunIn: folder, pipeline: Support.pipeline(), config: config, pairs: pairs,
                                    baseModel: Support.identity(pipeline))
        }
        let whole = try run("hipa-whole")
        let paths = try whole.adapters.loras(of: HiPATraining.adapterName).map(\.modulePath)
        XCTAssertTrue(paths.contains { $0.hasSuffix("resnets.0.conv1") } && paths.contains { $0.hasSuffix("attn2.to_k") })
        try whole.run(output: whole.folder + "/onestep.safetensors")
        let cut = try run("hipa-cut")
        cut.training.onStep = { report in if report.step == 3 { throw CancellationError() } }
        XCTAssertThrowsError(try cut.run(output: cut.folder + "/onestep.safetensors"))
        let resumed = try HiPATraining(resumingIn: cut.folder, pipeline: Support.pipeline(), baseModel: Support.identity(pipeline))
        XCTAssertEqual(resumed.training.step, 2)
        XCTAssertEqual(resumed.pairs.map(\.target.values), pairs.map(\.target.values))
        try resumed.run(output: resumed.folder + "/onestep.safetensors")
        XCTAssertEqual(try Support.values(resumed.adapters, [HiPATraining.adapterName]),
                       try Support.values(whole.adapters, [HiPATraining.adapterName]))
    }
}
