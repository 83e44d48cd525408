import Tensor

/// Named Float32 tensors a model's weights can be loaded from: a SafeTensors file, or tensors in memory.
public protocol WeightSource {
    /// Where the weights come from (a file path), for messages.
    var location: String { get }
    /// Every tensor name the source holds.
    var names: [String] { get }
    /// The shape of `name`, or nil when the source lacks it.
    func shape(of name: String) -> [Int]?
    /// Writes the `count` elements of `name`, converted to Float32, to `destination`.
    func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws
}

/// Tensors held in memory under their state-dict keys (tests, and weights computed rather than read).
public struct InMemoryWeights: WeightSource {
    public var tensors: [String: Tensor]
    public var location: String

    public init(_ tensors: [String: Tensor], location: String = "<memory>") {
        self.tensors = tensors
        self.location = location
    }

    public var names: [String] { tensors.keys.sorted() }

    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let tensor = tensors[name] else {
            throw ModelError.weightsMismatch(file: location, missing: [name], unexpected: [], shapeMismatches: [])
        }
        guard tensor.count == count else {
            throw ModelError.weightsMismatch(file: location, missing: [], unexpected: [],
                                             shapeMismatches: [(name, [count], tensor.shape)])
        }
        destination.update(from: tensor.data, count: count)
    }
}
