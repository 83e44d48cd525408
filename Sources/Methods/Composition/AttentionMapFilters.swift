import Foundation
import Tensor

/// The filters LoRA-Composer's energy applies to attention maps, differentiable where the maps are.
public enum AttentionMapFilters {
    /// The reference's `GaussianSmoothing` kernel (Attend-and-Excite's): per axis
    /// exp(−((i − mean) / (2σ))²), the product of the axes, normalised to sum 1. (The exponent's
    /// 2σ inside the square, rather than 2σ² outside, is the reference's and kept.)
    public static func gaussianKernel(size: Int, sigma: Float) -> [Float] {
        let mean = Float(size - 1) / 2
        let axis = (0 ..< size).map { index -> Float in
            let z = (Float(index) - mean) / (2 * sigma)
            return 1 / (sigma * (2 * Float.pi).squareRoot()) * Foundation.exp(-z * z)
        }
        var kernel: [Float] = []
        for row in axis { for column in axis { kernel.append(row * column) } }
        let total = kernel.reduce(0, +)
        return kernel.map { $0 / total }
    }

    /// Gaussian smoothing of maps `[N, 1, H, W]` with reflect padding (`F.pad(..., mode="reflect")`
    /// then `conv2d`), as the reference smooths each token's map before the enhancement and fill
    /// terms. Maps with a side too short to reflect are returned as they are.
    public static func smooth(_ maps: Tensor, kernelSize: Int = 3, sigma: Float = 0.5) throws -> Tensor {
        let pad = (kernelSize - 1) / 2
        guard maps.rank == 4, pad > 0, maps.shape[2] > pad, maps.shape[3] > pad else { return maps }
        let padded = try reflectPad(reflectPad(maps, pad, axis: 2), pad, axis: 3)
        let kernel = try Tensor(shape: [1, 1, kernelSize, kernelSize], values: gaussianKernel(size: kernelSize, sigma: sigma))
        return try Tensor.conv2d(padded, weight: kernel)
    }

    /// Reflect padding of `pad` along `axis` (the edge is not repeated: …, x2, x1, x0, x1, x2, …).
    static func reflectPad(_ x: Tensor, _ pad: Int, axis: Int) throws -> Tensor {
        let size = x.shape[axis]
        let before = try (1 ... pad).reversed().map { try x.slice(axis: axis, $0 ..< $0 + 1) }
        let after = try (1 ... pad).map { try x.slice(axis: axis, size - 1 - $0 ..< size - $0) }
        return try Tensor.concat(before + [x] + after, axis: axis)
    }

    /// The reference's `generate_gaussian_matrix` over a box of `height`×`width` cells:
    /// exp(−(x²/2 + y²/2)) on `linspace(−1, 1)` per side (`torch.meshgrid`, rows first), divided by
    /// its maximum. A side of one cell sits at −1, as `linspace(−1, 1, 1)` does.
    public static func boxGaussian(height: Int, width: Int) -> [Float] {
        func linspace(_ count: Int) -> [Float] {
            count == 1 ? [-1] : (0 ..< count).map { -1 + 2 * Float($0) / Float(count - 1) }
        }
        let xs = linspace(height), ys = linspace(width)
        var values: [Float] = []
        for x in xs { for y in ys { values.append(Foundation.exp(-(x * x / 2 + y * y / 2))) } }
        let peak = values.max() ?? 1
        return values.map { $0 / peak }
    }
}
