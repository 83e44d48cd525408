import Foundation
import Tensor

/// HiPA's high-frequency term (Zhang et al., "HiPA: Enabling One-Step Text-to-Image Diffusion Models
/// via High-Frequency-Promoting Adaptation"): the distance between the high frequencies of the
/// student's one-step x̂₀ and the teacher's x₀*, added to the spatial distance. Ours: on latents, with
/// two high-pass maps H — an FFT high-pass (the frequencies whose radius exceeds `cutoff` of the
/// Nyquist radius) and a 3×3 Laplacian edge map — and mean squared distances:
///
///     L = MSE(x̂₀, x₀*) + λ · (MSE(H_fft x̂₀, H_fft x₀*) + MSE(Δ x̂₀, Δ x₀*))
///
/// The FFT high-pass is linear and real (an even mask on the spectrum), so it is one h·w × h·w
/// matrix, built once in Double and applied as a matrix product: gradients flow through the
/// engine's matmul without an FFT kernel.
public struct HighFrequencyLoss {
    public let height: Int
    public let width: Int
    public let cutoff: Double
    public let weight: Float
    /// Re(F⁻¹ diag(M) F) as `[h·w, h·w]` (symmetric).
    public let highPass: Tensor
    /// The Laplacian kernel `[1, 1, 3, 3]`.
    let laplacian: Tensor

    public init(height: Int, width: Int, cutoff: Double = 0.5, weight: Float = 1) throws {
        guard height >= 1, width >= 1 else { throw MethodError.badSetting(name: "HiPA latents", reason: "need a size, got \(height)×\(width)") }
        guard cutoff.isFinite, cutoff >= 0, cutoff < 2.0.squareRoot() else {
            throw MethodError.badSetting(name: "high-pass cutoff", reason: "must lie in [0, √2), got \(cutoff)")
        }
        guard weight.isFinite, weight >= 0 else {
            throw MethodError.badSetting(name: "high-frequency weight", reason: "must be a number of 0 or more, got \(weight)")
        }
        self.height = height
        self.width = width
        self.cutoff = cutoff
        self.weight = weight
        highPass = Self.highPassMatrix(height: height, width: width, cutoff: cutoff)
        laplacian = try Tensor(shape: [1, 1, 3, 3], values: [0, 1, 0, 1, -4, 1, 0, 1, 0])
    }

    /// Whether frequency (u, v) of an h × w spectrum passes: its radius, in units of the Nyquist
    /// frequency along each axis, exceeds `cutoff`.
    static func passes(u: Int, v: Int, height: Int, width: Int, cutoff: Double) -> Bool {
        let fy = Double(min(u, height - u)) / Double(height), fx = Double(min(v, width - v)) / Double(width)
        return (fy * fy + fx * fx).squareRoot() / 0.5 > cutoff
    }

    static func highPassMatrix(height h: Int, width w: Int, cutoff: Double) -> Tensor {
        var passing: [(Int, Int)] = []
        for u in 0..<h { for v in 0..<w where passes(u: u, v: v, height: h, width: w, cutoff: cutoff) { passing.append((u, v)) } }
        let n = h * w
        let matrix = Tensor(zeros: [n, n])
        for p in 0..<n {
            let (py, px) = (p / w, p % w)
            for q in p..<n {
                let (qy, qx) = (q / w, q % w)
                var sum = 0.0
                for (u, v) in passing {
                    sum += cos(2 * Double.pi * (Double(u * (py - qy)) / Double(h) + Double(v * (px - qx)) / Double(w)))
                }
                let value = Float(sum / Double(n))
                matrix.data[p * n + q] = value
                matrix.data[q * n + p] = value
            }
        }
        return matrix
    }

    /// `x` `[…, h, w]` through the FFT high-pass.
    public func fftHighPass(_ x: Tensor) throws -> Tensor {
        let planes = x.count / (height * width)
        return try Tensor.matmul(x.reshaped([planes, height * width]), highPass).reshaped(x.shape)
    }

    /// Σ over the planes of `x` `[…, h, w]` of ‖H x‖², H the FFT high-pass beyond `cutoff`: by Parseval
    /// (1/(h·w)) Σ over passing frequencies of |X(u, v)|², with a separable DFT in Double — no h·w × h·w
    /// matrix, so it suits decoded frames too.
    public static func highFrequencyEnergy(_ x: Tensor, cutoff: Double = 0.5) -> Double {
        guard x.shape.count >= 2 else { return 0 }
        let h = x.shape[x.shape.count - 2], w = x.shape[x.shape.count - 1]
        guard h > 0, w > 0 else { return 0 }
        let planes = x.count / (h * w)
        func table(_ n: Int) -> (cos: [Double], sin: [Double]) {
            ((0..<n).map { cos(2 * Double.pi * Double($0) / Double(n)) }, (0..<n).map { sin(2 * Double.pi * Double($0) / Double(n)) })
        }
        let rowTable = table(w), columnTable = table(h)
        var total = 0.0
        let data = x.data
        for plane in 0..<planes {
            let base = plane * h * w
            // Row transforms: R[y][v] = Σ_x x[y][x]·e^{−2πi·v·x/w}.
            var re = [Double](repeating: 0, count: h * w), im = [Double](repeating: 0, count: h * w)
            for y in 0..<h {
                for v in 0..<w {
                    var a = 0.0, b = 0.0
                    for column in 0..<w {
                        let value = Double(data[base + y * w + column]), k = (v * column) % w
                        a += value * rowTable.cos[k]
                        b -= value * rowTable.sin[k]
                    }
                    re[y * w + v] = a
                    im[y * w + v] = b
                }
            }
            for u in 0..<h {
                for v in 0..<w where passes(u: u, v: v, height: h, width: w, cutoff: cutoff) {
                    var a = 0.0, b = 0.0
                    for y in 0..<h {
                        let k = (u * y) % h, c = columnTable.cos[k], s = columnTable.sin[k]
                        a += re[y * w + v] * c + im[y * w + v] * s
                        b += im[y * w + v] * c - re[y * w + v] * s
                    }
                    total += a * a + b * b
                }
            }
        }
        return total / Double(h * w)
    }

    /// `x` `[…, h, w]` through the Laplacian (zero padding).
    public func edges(_ x: Tensor) throws -> Tensor {
        let planes = x.count / (height * width)
        return try Tensor.conv2d(x.reshaped([planes, 1, height, width]), weight: laplacian, padding: 1).reshaped(x.shape)
    }

    /// The whole loss of prediction `x̂₀` against target `x₀*` (same shape, last two axes h × w).
    public func loss(prediction: Tensor, target: Tensor) throws -> Tensor {
        guard prediction.shape == target.shape, prediction.shape.suffix(2) == [height, width] else {
            throw MethodError.badSetting(name: "HiPA loss", reason: "prediction \(prediction.shape) and target \(target.shape) must match and end in [\(height), \(width)]")
        }
        let spatial = try Tensor.mseLoss(prediction, target)
        guard weight > 0 else { return spatial }
        let frequency = try Tensor.mseLoss(fftHighPass(prediction), fftHighPass(target))
        let edge = try Tensor.mseLoss(edges(prediction), edges(target))
        return try spatial + (frequency + edge) * weight
    }
}
