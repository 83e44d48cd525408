import Tensor

/// diffusers' `Timesteps` (embeddings.py): the sinusoidal embedding of timesteps, no parameters.
public struct Timesteps {
    public let channels: Int
    public let flipSinToCos: Bool
    public let downscaleFreqShift: Float

    public init(channels: Int, flipSinToCos: Bool, downscaleFreqShift: Float) {
        self.channels = channels
        self.flipSinToCos = flipSinToCos
        self.downscaleFreqShift = downscaleFreqShift
    }

    /// `[timesteps.count, channels]`.
    public func callAsFunction(_ timesteps: [Float]) throws -> Tensor {
        try Tensor.timestepEmbedding(timesteps: timesteps, dimension: channels, flipSinToCos: flipSinToCos,
                                     downscaleFreqShift: downscaleFreqShift)
    }
}
