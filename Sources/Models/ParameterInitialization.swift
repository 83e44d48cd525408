import Tensor

/// Fresh weights for training from scratch, as PyTorch's layer constructors draw them.
///
/// Models are built with zero weights (ready for `loadWeights`); pretraining needs the random start
/// torch gives instead: `nn.Linear`, `nn.Conv2d` and `nn.Conv3d` use `kaiming_uniform_(a=√5)`, i.e.
/// U(−1/√fan_in, 1/√fan_in), for the weight and the same bound for the bias; `nn.Embedding` draws
/// N(0, σ) (CLIP's `_init_weights` uses σ = 0.02 for token and 0.01 for position embeddings);
/// norms keep weight 1 and bias 0. diffusers' `TemporalConvLayer` zeroes its last convolution so a
/// fresh temporal layer is the identity, and that is kept here (`conv4` stays zero).
///
/// Parameter `i` (in `namedParameters()` order) draws from `generator.derived(i)`, so one layer's
/// draw does not depend on how many values came before it.
extension Module {
    public func initializeParameters(generator: RandomGenerator) throws {
        var owners: [ObjectIdentifier: Module] = [:]
        for (_, module) in namedModules() {
            for (_, tensor) in module.ownParameters { owners[ObjectIdentifier(tensor)] = module }
        }
        for (index, (path, tensor)) in namedParameters().enumerated() {
            var random = generator.derived(UInt64(index))
            let module = owners[ObjectIdentifier(tensor)]
            let values: Tensor?
            switch module {
            case let linear as Linear:
                values = random.uniform(tensor.shape, low: -bound(fanIn: linear.inFeatures), high: bound(fanIn: linear.inFeatures))
            case let conv as Conv2d:
                let fanIn = conv.inChannels * conv.kernelSize * conv.kernelSize
                values = random.uniform(tensor.shape, low: -bound(fanIn: fanIn), high: bound(fanIn: fanIn))
            case let conv as Conv3dTemporal:
                if path.contains("conv4.") {
                    values = Tensor(zeros: tensor.shape)
                } else {
                    let fanIn = conv.inChannels * conv.kernelFrames
                    values = random.uniform(tensor.shape, low: -bound(fanIn: fanIn), high: bound(fanIn: fanIn))
                }
            case is Embedding:
                values = random.normal(tensor.shape, std: path.contains("position_embedding") ? 0.01 : 0.02)
            default:
                // Norm layers and anything else keep the values their constructor set.
                values = nil
            }
            if let values { try tensor.assign(values) }
        }
    }

    private func bound(fanIn: Int) -> Float { 1 / Float(max(fanIn, 1)).squareRoot() }
}
