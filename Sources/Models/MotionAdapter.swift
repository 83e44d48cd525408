import Tensor

/// diffusers' `MotionAdapter` (unets/unet_motion_model.py): AnimateDiff's motion modules kept apart
/// from any image U-Net, `down_blocks.i.motion_modules.j`, `mid_block.motion_modules.j`,
/// `up_blocks.i.motion_modules.j` (up block i has one more than its down partner), the same paths
/// they have inside a `UNetMotionModel`. It holds weights only; `UNetMotionModel(image:adapter:)`
/// runs them.
public final class MotionAdapter: Module {
    public let config: MotionAdapterConfig

    /// A container of `motion_modules` (diffusers' `MotionModules`).
    public final class Modules: Module {
        public let motionModules: ModuleList<TransformerTemporalModel>
        init(_ modules: [TransformerTemporalModel]) {
            motionModules = ModuleList(modules)
            super.init()
            child("motion_modules", motionModules)
        }
    }

    /// Fresh modules with zero weights for `config` (load them with `loadWeights`).
    public init(config: MotionAdapterConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        let motion = config.motionLayout
        let channels = config.blockOutChannels
        let layers = config.motionLayersPerBlock.perBlock(channels.count)
        func modules(_ count: Int, block: Int, transformerLayers: Int) -> Modules {
            Modules(motion.modules(count, channels: channels[block], block: block, layers: transformerLayers,
                                   groups: config.motionNormNumGroups))
        }
        super.init()
        child("down_blocks", ModuleList(channels.indices.map { modules(layers[$0], block: $0, transformerLayers: motion.layersPerBlock[$0]) }))
        if config.useMotionMidBlock {
            child("mid_block", modules(config.motionMidBlockLayersPerBlock, block: channels.count - 1,
                                       transformerLayers: motion.layersPerMidBlock))
        }
        child("up_blocks", ModuleList(channels.indices.map { index in
            let block = channels.count - 1 - index
            return modules(layers[block] + 1, block: block, transformerLayers: motion.reverseLayersPerBlock[index])
        }))
    }

    /// The motion modules of `unet`, shared (not copied), under an adapter config that describes them.
    init(sharing unet: UNetMotionModel) throws {
        let unetConfig = unet.config
        var config = MotionAdapterConfig(blockOutChannels: unetConfig.blockOutChannels, normNumGroups: unetConfig.normNumGroups ?? 32,
                                         maxSequenceLength: unetConfig.motionMaxSeqLength, useMidBlock: unetConfig.useMotionMidBlock)
        config.diffusersVersion = unetConfig.diffusersVersion
        config.motionLayersPerBlock = unetConfig.layersPerBlock
        config.motionTransformerLayersPerBlock = unetConfig.temporalTransformerLayersPerBlock
        config.motionTransformerLayersPerMidBlock = .single(unetConfig.temporalTransformerLayersPerMidBlock ?? 1)
        config.motionMidBlockLayersPerBlock = unetConfig.midBlockLayers
        config.motionNumAttentionHeads = unetConfig.motionNumAttentionHeads
        self.config = config
        super.init()
        child("down_blocks", ModuleList(unet.downBlocks.map { Modules($0.motionModules!.items) }))
        if let mid = unet.midBlock.motionModules { child("mid_block", Modules(mid.items)) }
        child("up_blocks", ModuleList(unet.upBlocks.map { Modules($0.motionModules!.items) }))
    }
}

extension MotionAdapterConfig {
    /// Throws `badConfig` naming this adapter's key when its modules cannot go into `image`, as
    /// diffusers' `from_unet2d` refuses it (block count, layers per block) or would fail to load it
    /// (channels).
    public func checkFits(_ image: UNet2DConditionConfig, file: String) throws {
        let count = image.blockOutChannels.count
        guard blockOutChannels.count == count else {
            throw ModelError.badConfig(file: file, key: CodingKeys.blockOutChannels.rawValue,
                                       reason: "\(blockOutChannels.count) blocks, but the U-Net has \(count)")
        }
        guard blockOutChannels == image.blockOutChannels else {
            throw ModelError.badConfig(file: file, key: CodingKeys.blockOutChannels.rawValue,
                                       reason: "\(blockOutChannels), but the U-Net's blocks have \(image.blockOutChannels) channels")
        }
        let ours = motionLayersPerBlock.perBlock(count), theirs = image.layersPerBlock.perBlock(count)
        guard ours == theirs else {
            throw ModelError.badConfig(file: file, key: CodingKeys.motionLayersPerBlock.rawValue,
                                       reason: "\(ours) motion layers per block, but the U-Net has \(theirs) layers per block")
        }
        if useMotionMidBlock, motionMidBlockLayersPerBlock != 1 {
            throw ModelError.badConfig(file: file, key: CodingKeys.motionMidBlockLayersPerBlock.rawValue,
                                       reason: "\(motionMidBlockLayersPerBlock), but the U-Net's middle block has 1 layer")
        }
    }
}
