import Foundation

/// Scales all gradients together so their global L2 norm is at most `maxNorm`
/// (torch.nn.utils.clip_grad_norm_): the factor is maxNorm / (norm + 1e-6), applied only when below 1.
/// Returns the norm before clipping. Parameters without a gradient are ignored. A non-finite norm is
/// returned as is and leaves the gradients untouched, for the caller to skip the step.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) throws -> Float {
    guard maxNorm > 0 else {
        throw TensorError.invalidArgument(op: "clipGradNorm", reason: "max norm \(maxNorm) must be positive")
    }
    let gradients = parameters.compactMap(\.grad)
    var squares = 0.0
    for gradient in gradients {
        let g = gradient.data
        squares += Tensor.chunkedSum(count: gradient.count) { range in
            var acc = SIMD8<Float>(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let v = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                acc += v * v
                i += 8
            }
            var sum = Double(acc.sum())
            while i < range.upperBound { sum += Double(g[i] * g[i]); i += 1 }
            return sum
        }
    }
    let norm = Float(squares.squareRoot())
    guard norm.isFinite else { return norm }
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        for gradient in gradients {
            let g = gradient.data
            Parallel.forRanges(count: gradient.count) { range in
                for i in range { g[i] *= factor }
            }
        }
    }
    return norm
}
