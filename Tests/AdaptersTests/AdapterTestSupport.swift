import Adapters
import Checkpoints
import Foundation
import Models
import Tensor
import XCTest

/// Shared helpers: deterministic values, by-hand reference computations and the tiny U-Net.
enum Support {
    /// Deterministic pseudo-random values in [-1, 1) (xorshift; independent of the engine's generator).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    static func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        try! Tensor(shape: shape, values: values(shape.reduce(1, *), seed: seed).map { $0 * scale })
    }

    static func fill(_ tensor: Tensor, seed: UInt64, scale: Float = 1) {
        let v = values(tensor.count, seed: seed)
        for i in 0..<tensor.count { tensor.data[i] = v[i] * scale }
    }

    static func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
        let scale = max(expected.map(abs).max() ?? 0, 1e-6)
        let error = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(error, tolerance * scale, "\(what): max abs error \(error) vs max |expected| \(scale)", file: file, line: line)
    }

    /// B·A with A flattened to [r, rest]: the weight delta in the layer's layout, in Double.
    static func product(up: Tensor, down: Tensor) -> [Double] {
        let rank = down.shape[0], rest = down.count / rank, outputs = up.shape[0]
        var result = [Double](repeating: 0, count: outputs * rest)
        for o in 0..<outputs {
            for r in 0..<rank {
                let b = Double(up.data[o * rank + r])
                for j in 0..<rest { result[o * rest + j] += b * Double(down.data[r * rest + j]) }
            }
        }
        return result
    }

    /// Direct convolution: x [N, C, H, W], weight (flat, [O, C, k, k]), bias [O].
    static func conv2d(_ x: Tensor, weight: [Double], outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Tensor?) -> [Float] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1
        var out = [Float](repeating: 0, count: n * outChannels * oh * ow)
        for b in 0..<n { for o in 0..<outChannels { for i in 0..<oh { for j in 0..<ow {
            var sum = Double(bias?.data[o] ?? 0)
            for ch in 0..<c { for ki in 0..<kernel { for kj in 0..<kernel {
                let y = i * stride + ki - padding, xx = j * stride + kj - padding
                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                sum += weight[((o * c + ch) * kernel + ki) * kernel + kj] * Double(x.data[((b * c + ch) * h + y) * w + xx])
            } } }
            out[((b * outChannels + o) * oh + i) * ow + j] = Float(sum)
        } } } }
        return out
    }

    /// Direct temporal convolution: x [B, C, F, H, W], weight (flat, [O, C, k]), padding (k-1)/2.
    static func conv3dTemporal(_ x: Tensor, weight: [Double], outChannels: Int, kernel: Int, bias: Tensor?) -> [Float] {
        let (n, c, f, plane) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3] * x.shape[4])
        let padding = (kernel - 1) / 2
        var out = [Float](repeating: 0, count: n * outChannels * f * plane)
        for b in 0..<n { for o in 0..<outChannels { for t in 0..<f { for p in 0..<plane {
            var sum = Double(bias?.data[o] ?? 0)
            for ch in 0..<c { for dt in 0..<kernel {
                let source = t + dt - padding
                guard source >= 0, source < f else { continue }
                sum += weight[(o * c + ch) * kernel + dt] * Double(x.data[((b * c + ch) * f + source) * plane + p])
            } }
            out[((b * outChannels + o) * f + t) * plane + p] = Float(sum)
        } } } }
        return out
    }

    static func addScaled(_ base: Tensor, _ delta: [Double], scale: Double) -> [Double] {
        (0..<base.count).map { Double(base.data[$0]) + scale * delta[$0] }
    }

    // MARK: Tiny U-Net

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func fixture(_ folder: String, _ file: String) -> String {
        fixtures.appendingPathComponent(folder).appendingPathComponent(file).path
    }

    /// The unet3d fixture with its diffusers weights (Tests/Fixtures/fixtures_unet_vae.py).
    static func fixtureUNet() throws -> UNet3DConditionModel {
        let configPath = fixture("unet3d", "config.json")
        let model = try UNet3DConditionModel(config: UNet3DConfig.load(path: configPath), file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: fixture("unet3d", "diffusion_pytorch_model.safetensors")))
        return model
    }

    static func tensor(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
        try Tensor(shape: file.entry(name).shape, values: file.floats(name))
    }

    /// The unet3d fixture's 3-frame input and the U-Net's output on it.
    static func run(_ model: UNet3DConditionModel) throws -> Tensor {
        let io = try SafeTensorsFile(path: fixture("unet3d", "io.safetensors"))
        return try Tensor.withoutGrad {
            try model(sample: tensor(io, "sample_f3"), timesteps: io.floats("timesteps_f3"),
                      encoderHiddenStates: tensor(io, "encoder_hidden_states_f3"))
        }
    }

    static let temporaryFolder = FileManager.default.temporaryDirectory
        .appendingPathComponent("adapters-tests-\(ProcessInfo.processInfo.processIdentifier)").path

    static func temporaryPath(_ name: String) -> String {
        try? FileManager.default.createDirectory(atPath: temporaryFolder, withIntermediateDirectories: true)
        return URL(fileURLWithPath: temporaryFolder).appendingPathComponent(name).path
    }
}
