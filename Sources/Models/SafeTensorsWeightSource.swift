import Checkpoints

/// A safetensors file (diffusers' `diffusion_pytorch_model.safetensors`) as a weight source;
/// F16 and BF16 tensors are widened to Float32 as they are read.
extension SafeTensorsFile: WeightSource {
    public var location: String { path }

    public func shape(of name: String) -> [Int]? { entries[name]?.shape }
}
