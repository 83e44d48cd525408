import Adapters
import Foundation
import Tensor

/// The Riemannian preconditioner of scaled AdamW for LoRA factors (Zhang & Pilanci, "Riemannian
/// Preconditioned LoRA"; the `AdamWr` optimizer Break-for-Make's second stage uses), installed as
/// gradient hooks, so AdamW's moments see the preconditioned gradient:
///
///     grad_B ← grad_B (A Aᵀ + δI)⁻¹,   grad_A ← (Bᵀ B + δI)⁻¹ grad_A
///
/// with δ = 1e-6 (the reference's `reg`). The r × r Gram matrices are taken from the factors' values
/// at `refresh()`, called at the start of each step, so both hooks see the factors as they were
/// before the update, whatever order the optimizer visits them in. The inverses act on the rank
/// index only, so masked (frozen) rows of B and columns of A keep a zero gradient.
public final class RiemannianPreconditioner {
    public static let defaultDelta: Float = 1e-6

    public let lora: LoRA
    public let delta: Float
    /// (A Aᵀ + δI)⁻¹ and (Bᵀ B + δI)⁻¹ as of the last `refresh()`, r × r row-major.
    private var downGramInverse: [Double] = []
    private var upGramInverse: [Double] = []

    public init(lora: LoRA, delta: Float = RiemannianPreconditioner.defaultDelta) throws {
        guard case .linear = lora.geometry else {
            throw MethodError.badSetting(name: lora.modulePath, reason: "the Riemannian preconditioner needs a linear layer, got \(lora.geometry)")
        }
        guard delta.isFinite, delta > 0 else {
            throw MethodError.badSetting(name: "preconditioner delta", reason: "must be a positive number, got \(delta)")
        }
        self.lora = lora
        self.delta = delta
        try refresh()
    }

    /// Installs the hooks on A and B.
    public func install() {
        lora.up.gradHook = { [unowned self] gradient in try self.preconditionUp(gradient) }
        lora.down.gradHook = { [unowned self] gradient in try self.preconditionDown(gradient) }
    }

    /// Takes the Gram matrices from the factors' current values.
    public func refresh() throws {
        let r = lora.rank
        let inputs = lora.down.count / r, outputs = lora.up.count / r
        let a = lora.down.values.map(Double.init), b = lora.up.values.map(Double.init)
        var downGram = [Double](repeating: 0, count: r * r), upGram = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in 0..<r {
                var sum = 0.0
                for k in 0..<inputs { sum += a[i * inputs + k] * a[j * inputs + k] }
                downGram[i * r + j] = sum + (i == j ? Double(delta) : 0)
                var upSum = 0.0
                for k in 0..<outputs { upSum += b[k * r + i] * b[k * r + j] }
                upGram[i * r + j] = upSum + (i == j ? Double(delta) : 0)
            }
        }
        downGramInverse = try Self.inverse(downGram, size: r, what: "\(lora.modulePath) A Aᵀ + δI")
        upGramInverse = try Self.inverse(upGram, size: r, what: "\(lora.modulePath) Bᵀ B + δI")
    }

    /// grad_B (A Aᵀ + δI)⁻¹ for grad_B `[out, r]`.
    public func preconditionUp(_ gradient: Tensor) throws -> Tensor {
        let r = lora.rank, rows = gradient.count / r
        let g = gradient.data
        let result = Tensor(uninitialized: gradient.shape)
        for row in 0..<rows {
            for j in 0..<r {
                var sum = 0.0
                for k in 0..<r { sum += Double(g[row * r + k]) * downGramInverse[k * r + j] }
                result.data[row * r + j] = Float(sum)
            }
        }
        return result
    }

    /// (Bᵀ B + δI)⁻¹ grad_A for grad_A `[r, in]`.
    public func preconditionDown(_ gradient: Tensor) throws -> Tensor {
        let r = lora.rank, columns = gradient.count / r
        let g = gradient.data
        let result = Tensor(uninitialized: gradient.shape)
        for i in 0..<r {
            for column in 0..<columns {
                var sum = 0.0
                for k in 0..<r { sum += upGramInverse[i * r + k] * Double(g[k * columns + column]) }
                result.data[i * columns + column] = Float(sum)
            }
        }
        return result
    }

    /// The inverse of a symmetric positive definite matrix by Gauss–Jordan elimination with partial
    /// pivoting, in Double.
    static func inverse(_ matrix: [Double], size n: Int, what: String) throws -> [Double] {
        var a = matrix
        var inverse = [Double](repeating: 0, count: n * n)
        for i in 0..<n { inverse[i * n + i] = 1 }
        for column in 0..<n {
            var pivot = column
            for row in (column + 1)..<n where abs(a[row * n + column]) > abs(a[pivot * n + column]) { pivot = row }
            guard a[pivot * n + column] != 0, a[pivot * n + column].isFinite else {
                throw MethodError.badSetting(name: what, reason: "is singular")
            }
            if pivot != column {
                for k in 0..<n {
                    a.swapAt(pivot * n + k, column * n + k)
                    inverse.swapAt(pivot * n + k, column * n + k)
                }
            }
            let scale = 1 / a[column * n + column]
            for k in 0..<n {
                a[column * n + k] *= scale
                inverse[column * n + k] *= scale
            }
            for row in 0..<n where row != column {
                let factor = a[row * n + column]
                guard factor != 0 else { continue }
                for k in 0..<n {
                    a[row * n + k] -= factor * a[column * n + k]
                    inverse[row * n + k] -= factor * inverse[column * n + k]
                }
            }
        }
        return inverse
    }
}
