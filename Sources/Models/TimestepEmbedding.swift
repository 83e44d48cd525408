import Tensor

/// diffusers' `TimestepEmbedding` (embeddings.py) with SiLU: `linear_1` → SiLU → `linear_2`.
public final class TimestepEmbedding: Module {
    public let linear1: Linear
    public let linear2: Linear

    public init(inChannels: Int, timeEmbeddingDimension: Int) {
        linear1 = Linear(inChannels, timeEmbeddingDimension)
        linear2 = Linear(timeEmbeddingDimension, timeEmbeddingDimension)
        super.init()
        child("linear_1", linear1)
        child("linear_2", linear2)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try linear2(linear1(x).silu())
    }
}
