import Foundation

/// A dense Float32 array with a shape, row-major and contiguous, plus what autograd needs.
///
/// Tensors are reference types: a parameter keeps its identity while optimizers update it in
/// place, and the gradient graph refers to the tensors that produced a result. Every tensor is
/// contiguous; views that keep contiguity (reshape, a slice along the first axis) share storage,
/// anything else is an explicit copy.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: Storage
    /// Offset of element 0 in `storage`, in floats.
    public let offset: Int
    public let count: Int

    /// Marks a leaf (a parameter, or an input such as a latent) whose gradient `backward()` accumulates.
    public var requiresGrad: Bool
    /// The accumulated gradient of a leaf that requires it; summed over `backward()` calls until cleared.
    public var grad: Tensor?
    /// Multiplies this leaf's gradient element-wise as it accumulates (0 freezes an entry, 1 leaves it learnable).
    public var gradMask: Tensor?
    /// Transforms this parameter's gradient before an optimizer's update reads it (after `gradMask`
    /// was applied during accumulation), e.g. Break-for-Make's Riemannian preconditioner for LoRA
    /// factors. Applied by `Optimizer.step()`, not by `backward()`; must return the gradient's shape.
    public var gradHook: ((Tensor) throws -> Tensor)?
    /// The operation that produced this tensor, while a gradient may still flow through it.
    var node: GradNode?
    /// An optional name (a parameter's module path), used in messages.
    public var name: String?

    // MARK: Creation

    /// A tensor over existing storage. `offset + count` must lie inside the storage.
    public init(shape: [Int], storage: Storage, offset: Int = 0) {
        let count = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 } && offset >= 0 && offset + count <= storage.count,
                     "Tensor: shape \(shape) at offset \(offset) does not fit storage of \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = count
        self.requiresGrad = false
    }

    /// A zero-filled tensor.
    public convenience init(zeros shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    /// A tensor whose contents the caller fills before reading (kernels' outputs).
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *), zeroed: false))
    }

    /// A tensor filled with one value.
    public convenience init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        data.update(repeating: value, count: count)
    }

    /// A tensor holding `values`; throws when their number does not match the shape.
    public convenience init(shape: [Int], values: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(op: "Tensor(shape:values:)", reason: "negative size in shape \(shape)")
        }
        let count = shape.reduce(1, *)
        guard count == values.count else {
            throw TensorError.invalidArgument(op: "Tensor(shape:values:)",
                reason: "shape \(shape) holds \(count) elements but \(values.count) values were given")
        }
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A scalar (shape []).
    public convenience init(scalar: Float) {
        self.init(repeating: scalar, shape: [])
    }

    // MARK: Access

    /// The first element, mutable; valid while the tensor is alive.
    @inlinable
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    public var rank: Int { shape.count }

    /// The elements in row-major order.
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The value of a tensor with one element.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements")
        return data[0]
    }

    public subscript(flat index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }

    /// True when this tensor takes part in gradient computation (a leaf that requires it or a result of one).
    public var needsGrad: Bool { requiresGrad || node != nil }

    /// Row-major strides in elements.
    public var strides: [Int] { Tensor.strides(of: shape) }

    public static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }

    /// A copy with its own storage and no gradient history.
    public func copy() -> Tensor {
        let result = Tensor(uninitialized: shape)
        result.data.update(from: data, count: count)
        return result
    }

    /// This tensor's values without gradient history (shares storage).
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage, offset: offset)
    }

    /// Copies `source`'s values into this tensor in place (no gradient); shapes must hold the same count.
    public func assign(_ source: Tensor) throws {
        guard source.count == count else {
            throw TensorError.shapeMismatch(op: "assign", lhs: shape, rhs: source.shape)
        }
        data.update(from: source.data, count: count)
    }

    /// Sets every element to zero in place.
    public func zero() {
        data.update(repeating: 0, count: count)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = values.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(shown)\(count > 8 ? ", ..." : "")]"
    }
}
