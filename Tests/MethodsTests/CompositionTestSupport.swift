import Adapters
import Diffusion
import Foundation
import Models
import Tensor
import XCTest
@testable import Methods

/// The tiny pipeline of Tests/Fixtures/pipeline (8×8 latent, cross-attention at 8×8 and 4×4) and
/// LoRA files made for it.
enum CompositionFixtures {
    static let pipelineFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline").path

    static func pipeline() throws -> TextToVideoPipeline {
        try TextToVideoPipeline.load(folder: pipelineFolder)
    }

    /// The fixture U-Net's spatial cross-attention layers (`…attn2`).
    static func crossAttentionPaths(_ pipeline: TextToVideoPipeline) -> [String] {
        SpatialAttentionLayers(unet: pipeline.unet).crossAttention.map(\.path)
    }

    /// Deterministic factors, large enough to change what a layer computes.
    static func factors(_ count: Int, salt: Float, sine: Bool) -> [Float] {
        (0 ..< count).map { sine ? sin(Float($0) * 1.7 + salt) * 0.6 : cos(Float($0) * 2.3 + salt) * 0.6 }
    }

    /// Writes a LoRA (rank 2, alpha `alpha`) on `modules` of the pipeline's U-Net to a file.
    static func writeLoRA(_ pipeline: TextToVideoPipeline, modules: [String], salt: Float, alpha: Float = 2,
                          metadata: LoRAFileMetadata = LoRAFileMetadata(), to path: String) throws {
        let set = AdapterSet(model: pipeline.unet, component: "unet")
        let loras = try modules.enumerated().map { index, module -> LoRA in
            let layer = try XCTUnwrap(pipeline.unet.module(at: module).flatMap(AdaptableLayer.init), module)
            let geometry = layer.geometry
            let down = try Tensor(shape: geometry.downShape(rank: 2),
                                  values: factors(geometry.downShape(rank: 2).reduce(1, *), salt: salt + Float(index), sine: true))
            let up = try Tensor(shape: geometry.upShape(rank: 2),
                                values: factors(geometry.upShape(rank: 2).reduce(1, *), salt: salt + Float(index), sine: false))
            return try LoRA(adapterName: "scratch", modulePath: module, geometry: geometry, alpha: alpha, down: down, up: up)
        }
        try set.add("scratch", loras: loras)
        try set.save("scratch", to: path, metadata: metadata)
        try set.remove("scratch")
    }

    /// `to_k`, `to_v` and `to_out.0` of every spatial cross-attention layer.
    static func crossAttentionProjections(_ pipeline: TextToVideoPipeline) -> [String] {
        crossAttentionPaths(pipeline).flatMap { [$0 + ".to_k", $0 + ".to_v", $0 + ".to_out.0"] }
    }

    static func temporaryFolder() throws -> String {
        let folder = NSTemporaryDirectory() + "customize-compose-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Fills every parameter of `module` with seeded normal values (scaled), so layers compute something.
    static func randomise(_ module: Module, seed: UInt64, std: Float = 0.5) {
        var generator = RandomGenerator(seed: seed)
        for (_, tensor) in module.namedParameters() {
            let values = generator.normal(tensor.shape, std: std)
            tensor.data.update(from: values.data, count: tensor.count)
        }
    }

    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
    }
}
