import Foundation
import Models
import Tensor
@testable import Diffusion

/// Tiny models and a 16-pixel pattern world, so training tests take seconds.
enum TinyPretraining {
    static let colours: [(String, (Float, Float, Float))] = [("red", (1, -1, -1)), ("green", (-1, 1, -1)), ("blue", (-1, -1, 1)), ("white", (1, 1, 1))]

    /// A coloured square on black, moving right one pixel per frame; caption "a red square".
    struct PatternData: PretrainingData {
        var imageSide: Int { 16 }
        var vocabularyWords: [String] { ["a", "square", "red", "green", "blue", "white"] }

        func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String]) {
            let side = imageSide, plane = side * side
            let pixels = Tensor(repeating: -1, shape: [count * frames, 3, side, side])
            var captions: [String] = []
            for item in 0..<count {
                let sample = index * count + item
                let (name, rgb) = colours[sample % colours.count]
                captions.append("a \(name) square")
                let x0 = (sample * 7) % 8, y0 = (sample * 5) % 8
                for frame in 0..<frames {
                    let base = pixels.data + (item * frames + frame) * 3 * plane
                    for y in y0..<(y0 + 6) {
                        for x in (x0 + frame)..<min(side, x0 + frame + 6) {
                            base[y * side + x] = rgb.0
                            base[plane + y * side + x] = rgb.1
                            base[2 * plane + y * side + x] = rgb.2
                        }
                    }
                }
            }
            return (pixels, captions)
        }

        var providesObjectMasks: Bool { true }

        /// Batch `index` with its squares marked.
        func maskedBatch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String], masks: Tensor?) {
            let (pixels, captions) = try batch(index: index, count: count, frames: frames)
            let side = imageSide, plane = side * side
            let masks = Tensor(zeros: [count * frames, 1, side, side])
            for item in 0..<(count * frames) {
                for pixel in 0..<plane where (0..<3).contains(where: { pixels.data[(item * 3 + $0) * plane + pixel] != -1 }) {
                    masks.data[item * plane + pixel] = 1
                }
            }
            return (pixels, captions, masks)
        }
    }

    /// `PatternData` that cannot tell objects from background.
    struct MasklessData: PretrainingData {
        let pattern = PatternData()
        var imageSide: Int { pattern.imageSide }
        var vocabularyWords: [String] { pattern.vocabularyWords }
        func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String]) {
            try pattern.batch(index: index, count: count, frames: frames)
        }
    }

    /// `PatternData` with parts: `focused` gives the same squares all white, and logs the batch
    /// indices it serves with their frame counts.
    final class ServedLog: @unchecked Sendable { var served: [(index: Int, frames: Int)] = [] }
    struct FocusablePatternData: PretrainingData {
        var whiteOnly = false
        let log = ServedLog()
        var imageSide: Int { 16 }
        var vocabularyWords: [String] { PatternData().vocabularyWords }
        func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String]) {
            guard whiteOnly else { return try PatternData().batch(index: index, count: count, frames: frames) }
            log.served.append((index, frames))
            // Sample 3 of every 4 is white in the pattern: draw only those.
            let batches = try (0..<count).map { try PatternData().batch(index: (index * count + $0) * 4 + 3, count: 1, frames: frames) }
            return (try Tensor.concat(batches.map(\.pixels), axis: 0), batches.flatMap(\.captions))
        }
        func focused(_ focus: PretrainConfig.MotionTraining.Focus) throws -> PretrainingData? {
            if let colours = focus.colours, colours != ["white"] { throw PretrainingFocusError(key: "colours", reason: "only white here") }
            var part = self
            part.whiteOnly = true
            return part
        }
    }

    static func config() -> PretrainConfig {
        var config = PretrainConfig()
        var vae = AutoencoderKLConfig(blockOutChannels: [8, 8], layersPerBlock: 1, latentChannels: 4, normNumGroups: 4)
        vae.sampleSize = .single(16)
        vae.scalingFactor = 1
        config.vae = vae
        var unet = UNet3DConfig(blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4, crossAttentionDim: 16,
                                attentionHeadDim: 4, inChannels: 4, outChannels: 4)
        unet.sampleSize = .single(8)
        config.unet = unet
        var text = CLIPTextConfig(vocabSize: 1, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1,
                                  numAttentionHeads: 2, maxPositionEmbeddings: 8)
        text.projectionDim = 16
        config.textEncoder = text
        config.vaeTraining = .init(trainer: TrainerOptions(steps: 2, learningRate: 1e-3, checkpointingSteps: 1), batchSize: 2)
        config.textEncoderWarmup = .init(trainer: TrainerOptions(steps: 2, learningRate: 1e-3, checkpointingSteps: 1), batchSize: 4, slots: 3)
        config.unetTraining = .init(trainer: TrainerOptions(steps: 2, learningRate: 1e-3, emaDecay: 0.9, checkpointingSteps: 1),
                                    imageBatchSize: 2, clipBatchSize: 1, clipFrames: 3, clipFraction: 0.5)
        config.preview = .init(every: 2, prompts: [.init(prompt: "a red square", frames: 1), .init(prompt: "a blue square", frames: 2)],
                               steps: 2, guidance: 2)
        return config
    }

    static func temporaryFolder(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    }
}
