import Adapters
import Diffusion
import Foundation
import Methods
import Tensor
import XCTest

/// Shared helpers: the tiny pipeline fixture, deterministic values, gradient snapshots.
enum Support {
    static let pipelineFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline").path

    /// A freshly loaded tiny pipeline (U-Net [8, 16], 8×8 latents, 16×16 pixels).
    static func pipeline() throws -> TextToVideoPipeline {
        try TextToVideoPipeline.load(folder: pipelineFolder)
    }

    static func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var generator = RandomGenerator(seed: seed)
        return generator.normal(shape, std: scale)
    }

    /// Gives every LoRA of `names` a nonzero B, so that A's gradient is nonzero too (B starts at 0).
    static func makeVisible(_ set: AdapterSet, _ names: [String], seed: UInt64) throws {
        for (offset, name) in names.enumerated() {
            var generator = RandomGenerator(seed: seed).derived(UInt64(offset))
            for lora in try set.loras(of: name) {
                try lora.up.assign(generator.normal(lora.up.shape, std: 0.05))
            }
        }
    }

    /// Every factor's gradient values (nil where none), keyed by adapter and path.
    static func gradients(_ set: AdapterSet, _ names: [String]) throws -> [String: [Float]?] {
        var result: [String: [Float]?] = [:]
        for name in names {
            for (path, tensor) in try set.parameters(of: name) { result["\(name)/\(path)"] = tensor.grad?.values }
        }
        return result
    }

    static func clearGradients(_ set: AdapterSet, _ names: [String]) throws {
        for name in names { for (_, tensor) in try set.parameters(of: name) { tensor.grad = nil } }
    }

    /// Every factor's values, keyed by adapter and path.
    static func values(_ set: AdapterSet, _ names: [String]) throws -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for name in names {
            for (path, tensor) in try set.parameters(of: name) { result["\(name)/\(path)"] = tensor.values }
        }
        return result
    }

    /// `count` clips of `frames` frames of random latents for the tiny pipeline, with flipped copies.
    static func clips(_ count: Int, frames: Int, flipped: Bool = true) -> [MotionTrainingClip] {
        (0..<count).map { index in
            MotionTrainingClip(name: "clip\(index).mp4", caption: ["a photo of a cat", "a dog running", "a bird"][index % 3],
                               latents: tensor([1, 4, frames, 8, 8], seed: 100 + UInt64(index)),
                               flippedLatents: flipped ? tensor([1, 4, frames, 8, 8], seed: 200 + UInt64(index)) : nil)
        }
    }

    static func temporaryFolder(_ name: String) -> String {
        NSTemporaryDirectory() + "customize-methods-\(name)-\(UUID().uuidString)"
    }

    static func identity(_ pipeline: TextToVideoPipeline) throws -> BaseModelIdentity {
        try BaseModelIdentity(name: "pipeline", unet: pipeline.unet)
    }

    /// A small, fast run: rank 2, 3 frames, no previews.
    static func config(steps: Int, checkpointEvery: Int = 100) -> MotionDirectorConfig {
        var config = MotionDirectorConfig()
        config.loraRank = 2
        config.maxTrainSteps = steps
        config.checkpointingSteps = checkpointEvery
        config.trainData.sampleFrames = 3
        config.randomHorizontalFlip = 0.5
        config.validationData.samplePreview = false
        return config
    }
}
