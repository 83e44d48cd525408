import Foundation
import Tensor

/// The one denoiser interface (DESIGN principle 9): diffusers' `UNet3DConditionModel`
/// (ModelScope/ZeroScope), AnimateDiff's `UNetMotionModel`, and the image `UNet2DConditionModel`
/// all take noisy latents `[B, C, F, H, W]`, timesteps and per-clip text states `[B, L, D]`, and
/// return the prediction `[B, C, F, H, W]`; their layers are named by their diffusers paths, so
/// pipelines, trainers and methods never name a concrete U-Net class.
public protocol Denoiser: Module {
    /// diffusers' class name, as `unet/config.json` and model_index.json give it.
    var className: String { get }
    var inChannels: Int { get }
    var outChannels: Int { get }
    var crossAttentionDim: Int { get }
    var blockOutChannels: [Int] { get }
    var sampleSize: IntOrList? { get }
    /// The most frames one pass can take (AnimateDiff's `motion_max_seq_length`), or nil for no limit.
    var maxFrames: Int? { get }
    /// Whether the model relates frames to one another (false for an image U-Net: each frame is a picture).
    var isVideoModel: Bool { get }
    /// `unet/config.json` as diffusers writes it (sorted keys), stamped with `diffusersVersion`.
    func configJSON(diffusersVersion: String?) throws -> Data
    /// The config without `_diffusers_version`, compact with sorted keys: what identifies the base
    /// model an adapter was trained on (re-saving with another diffusers version does not change it).
    func canonicalConfigJSON() throws -> Data

    /// Inference mode.
    func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) throws -> Tensor
    /// Training mode: dropout layers (UNet3D's temporal convolutions) draw from `dropoutGenerator`.
    func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                        dropoutGenerator: inout RandomGenerator) throws -> Tensor
}

extension Denoiser {
    /// The latent height and width the model was trained at (`sample_size`), or `fallback`.
    public func latentSize(fallback: Int = 32) -> (height: Int, width: Int) {
        switch sampleSize {
        case .single(let size)?: return (size, size)
        case .list(let sizes)? where sizes.count == 2: return (sizes[0], sizes[1])
        default: return (fallback, fallback)
        }
    }
}

/// The checks every denoiser makes of its inputs: `sample` `[B, inChannels, F, H, W]`, text states
/// `[B, L, crossAttentionDim]`, one timestep per clip or one for all. Returns the sample's dimensions.
func checkDenoiserInputs(_ name: String, sample: Tensor, inChannels: Int, encoderHiddenStates: Tensor, crossAttentionDim: Int,
                         timesteps: [Float]) throws -> (batch: Int, channels: Int, frames: Int, height: Int, width: Int) {
    guard sample.rank == 5, sample.shape[1] == inChannels else {
        throw ModelError.badInput("\(name): sample must be [batch, \(inChannels), frames, height, width], got \(sample.shape)")
    }
    let batch = sample.shape[0]
    guard encoderHiddenStates.rank == 3, encoderHiddenStates.shape[0] == batch, encoderHiddenStates.shape[2] == crossAttentionDim else {
        throw ModelError.badInput("\(name): encoder hidden states must be [\(batch), tokens, \(crossAttentionDim)], got \(encoderHiddenStates.shape)")
    }
    guard timesteps.count == batch || timesteps.count == 1 else {
        throw ModelError.badInput("\(name): \(timesteps.count) timesteps for a batch of \(batch)")
    }
    return (batch, sample.shape[1], sample.shape[2], sample.shape[3], sample.shape[4])
}

/// A diffusers config.json that records the diffusers version that wrote it.
public protocol VersionedConfig: Encodable {
    var diffusersVersion: String? { get set }
}

extension VersionedConfig {
    /// As written into a folder: diffusers' layout (sorted keys, two-space indent), stamped with `version`.
    public func fileJSON(diffusersVersion version: String?) throws -> Data {
        var copy = self
        copy.diffusersVersion = version
        return try JSONFiles.encode(copy)
    }

    /// Without the version, compact with sorted keys: the bytes a base-model identity hashes.
    public func canonicalJSON() throws -> Data {
        var copy = self
        copy.diffusersVersion = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(copy)
    }
}

extension UNet3DConfig: VersionedConfig {}
extension UNet2DConditionConfig: VersionedConfig {}
extension UNetMotionConfig: VersionedConfig {}
extension MotionAdapterConfig: VersionedConfig {}

extension UNet3DConditionModel: Denoiser {
    public var className: String { "UNet3DConditionModel" }
    public var inChannels: Int { config.inChannels }
    public var outChannels: Int { config.outChannels }
    public var crossAttentionDim: Int { config.crossAttentionDim }
    public var blockOutChannels: [Int] { config.blockOutChannels }
    public var sampleSize: IntOrList? { config.sampleSize }
    public var maxFrames: Int? { nil }
    public var isVideoModel: Bool { true }
    public func canonicalConfigJSON() throws -> Data { try config.canonicalJSON() }
    public func configJSON(diffusersVersion: String?) throws -> Data { try config.fileJSON(diffusersVersion: diffusersVersion) }
}

extension ImageUNet {
    public var inChannels: Int { layout.inChannels }
    public var outChannels: Int { layout.outChannels }
    public var crossAttentionDim: Int { layout.crossAttentionDim }
    public var blockOutChannels: [Int] { layout.blockOutChannels }
    public var maxFrames: Int? { layout.motion?.maxSequenceLength }
    public var isVideoModel: Bool { layout.motion != nil }
}

extension UNet2DConditionModel: Denoiser {
    public var className: String { "UNet2DConditionModel" }
    public var sampleSize: IntOrList? { config.sampleSize }
    public func canonicalConfigJSON() throws -> Data { try config.canonicalJSON() }
    public func configJSON(diffusersVersion: String?) throws -> Data { try config.fileJSON(diffusersVersion: diffusersVersion) }
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                               dropoutGenerator: inout RandomGenerator) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, motion: false,
                    dropoutGenerator: dropoutGenerator).output
    }
}

extension UNetMotionModel: Denoiser {
    public var className: String { "UNetMotionModel" }
    public var sampleSize: IntOrList? { config.sampleSize }
    public func canonicalConfigJSON() throws -> Data { try config.canonicalJSON() }
    public func configJSON(diffusersVersion: String?) throws -> Data { try config.fileJSON(diffusersVersion: diffusersVersion) }
    /// A clip runs the motion modules; one frame is a picture, which the image U-Net alone draws
    /// (as `StableDiffusionPipeline` would with AnimateDiff's image half).
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        try self(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, motion: sample.rank == 5 && sample.shape[2] > 1)
    }
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                               dropoutGenerator: inout RandomGenerator) throws -> Tensor {
        let result = try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                                 motion: sample.rank == 5 && sample.shape[2] > 1, dropoutGenerator: dropoutGenerator)
        dropoutGenerator = result.generator!
        return result.output
    }
}
