import Tensor

/// torch.nn.Embedding: a `weight` table `[count, dimension]` whose rows are looked up by index.
public final class Embedding: Module {
    public let weight: Tensor
    public let count: Int
    public let dimension: Int

    public init(_ count: Int, _ dimension: Int) {
        self.count = count
        self.dimension = dimension
        weight = Tensor(zeros: [count, dimension])
        super.init()
        parameter("weight", weight)
    }

    /// Rows `indices` stacked into `[indices.count, dimension]`; an index outside the table throws.
    public func callAsFunction(_ indices: [Int]) throws -> Tensor {
        try Tensor.embedding(indices: indices, weight: weight)
    }
}
