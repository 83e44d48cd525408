import Tensor

/// diffusers' `GEGLU` (activations.py): `proj` Linear to twice the width, then
/// `hidden · gelu(gate)` over its two halves.
public final class GEGLU: Module {
    public let proj: Linear

    public init(_ inputDimension: Int, _ outputDimension: Int, bias: Bool = true) {
        proj = Linear(inputDimension, outputDimension * 2, bias: bias)
        super.init()
        child("proj", proj)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try proj(x).geglu()
    }
}
