import Tensor

/// diffusers' `UNetMotionModel` (unets/unet_motion_model.py): AnimateDiff's denoiser, an image
/// U-Net whose blocks (`CrossAttnDownBlockMotion`, `DownBlockMotion`, `UNetMidBlockCrossAttnMotion`,
/// `UpBlockMotion`, `CrossAttnUpBlockMotion`) hold motion modules (`motion_modules.i`, diffusers'
/// `AnimateDiffTransformer3D`: attention across frames with sinusoidal frame positions).
///
/// `init(image:adapter:)` and `imageUNet()` / `motionAdapter()` are diffusers' `from_unet2d` and
/// the split `save_motion_modules` makes: the image layers and the motion modules have the same
/// paths in all three models.
public final class UNetMotionModel: ImageUNet {
    public let config: UNetMotionConfig

    /// Builds the model with zero weights; throws `badConfig` for layouts not supported here.
    public init(config: UNetMotionConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        super.init(layout: config.layout)
    }

    /// diffusers' `UNetMotionModel.from_unet2d(image, adapter)`: the image U-Net's weights and the
    /// adapter's motion modules in one model. Throws `badConfig` naming the adapter's config key when
    /// it does not fit the U-Net (block count, channels, layers per block), as diffusers refuses it.
    public convenience init(image: UNet2DConditionModel, adapter: MotionAdapter, adapterFile: String = "motion_adapter/config.json") throws {
        try adapter.config.checkFits(image.config, file: adapterFile)
        try self.init(config: UNetMotionConfig(image: image.config, adapter: adapter.config))
        let weights = InMemoryWeights(Dictionary(uniqueKeysWithValues: image.stateDict() + adapter.stateDict()))
        try loadWeights(from: weights)
    }

    /// The image U-Net alone (a copy of this model's image layers), as `StableDiffusionPipeline` would run it.
    public func imageUNet() throws -> UNet2DConditionModel {
        var image = UNet2DConditionConfig(blockOutChannels: config.blockOutChannels, normNumGroups: config.normNumGroups ?? 32,
                                          crossAttentionDim: config.crossAttentionDim, inChannels: config.inChannels,
                                          outChannels: config.outChannels)
        image.diffusersVersion = config.diffusersVersion
        image.sampleSize = config.sampleSize
        image.downBlockTypes = config.downBlockTypes.map { $0.hasPrefix("CrossAttn") ? "CrossAttnDownBlock2D" : "DownBlock2D" }
        image.upBlockTypes = config.upBlockTypes.map { $0.hasPrefix("CrossAttn") ? "CrossAttnUpBlock2D" : "UpBlock2D" }
        image.layersPerBlock = config.layersPerBlock
        image.downsamplePadding = config.downsamplePadding
        image.midBlockScaleFactor = config.midBlockScaleFactor
        image.actFn = config.actFn
        image.normEps = config.normEps
        image.transformerLayersPerBlock = config.transformerLayersPerBlock
        image.attentionHeadDim = config.numAttentionHeads
        image.useLinearProjection = config.useLinearProjection
        let model = try UNet2DConditionModel(config: image)
        let own = Dictionary(uniqueKeysWithValues: stateDict())
        try model.loadWeights(from: InMemoryWeights(own.filter { !$0.key.contains("motion_modules.") }))
        return model
    }

    /// The motion modules as a `MotionAdapter` (diffusers' `save_motion_modules`), sharing this model's tensors.
    public func motionAdapter() throws -> MotionAdapter {
        try MotionAdapter(sharing: self)
    }

    /// The prediction for a clip: `sample` `[B, in_channels, F, H, W]`, per-clip text states
    /// `[B, L, D]` (repeated per frame inside, as AnimateDiffPipeline does); returns `[B, out_channels, F, H, W]`.
    /// `motion` false runs the image layers alone.
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor, motion: Bool) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, motion: motion,
                    dropoutGenerator: nil).output
    }
}
