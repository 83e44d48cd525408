import Foundation
import Models
import Tensor
import XCTest
@testable import Diffusion

/// `customize bench model --arch unet3d|animatediff` builds the U-Nets the PyTorch peer
/// (../shared/peer/torch_baseline.py) times, and the animatediff benchmark runs end to end.
final class ModelBenchmarkTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// `sum(p.numel() for p in unet.parameters())` of the peer's U-Nets under diffusers 0.42.1:
    /// `UNetMotionModel.from_unet2d(UNet2DConditionModel(**TINY_UNET2D), MotionAdapter(**TINY_MOTION))`
    /// (the peer prints unet_params_m 8.74) and `UNet3DConditionModel(**TINY_UNET)` (10.74).
    static let peerAnimateDiffParameters = 8_741_444
    static let peerUNet3DParameters = 10_735_236

    func testReferenceUNetsHaveThePeersParameterCounts() throws {
        let motion = try ModelBenchmark.referenceUNet(.animatediff).build()
        XCTAssertTrue(motion is UNetMotionModel)
        XCTAssertEqual(motion.parameterCount, Self.peerAnimateDiffParameters)
        XCTAssertEqual((Double(motion.parameterCount) / 1e4).rounded() / 100, 8.74, accuracy: 0.01)
        // pos_embed.pe is a buffer, as in torch: neither counted nor randomised.
        XCTAssertFalse(motion.namedBuffers().isEmpty)
        XCTAssertFalse(motion.namedParameters().contains { $0.path.hasSuffix("pos_embed.pe") })

        let unet3d = try ModelBenchmark.referenceUNet(.unet3d).build()
        XCTAssertTrue(unet3d is UNet3DConditionModel)
        XCTAssertEqual(unet3d.parameterCount, Self.peerUNet3DParameters)
    }

    /// diffusers' from_unet2d config: Motion blocks, attention_head_dim 8 read as 8 heads per block,
    /// the adapter's 4 motion heads, one motion module per layer and a motion mid block.
    func testAnimateDiffReferenceIsFromUNet2DOfThePeersConfigs() throws {
        guard case .animatediff(let config) = try ModelBenchmark.referenceUNet(.animatediff) else {
            return XCTFail("animatediff reference is not a UNetMotionModel config")
        }
        XCTAssertEqual(config.downBlockTypes, ["CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "DownBlockMotion"])
        XCTAssertEqual(config.upBlockTypes, ["UpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion"])
        XCTAssertEqual(config.blockOutChannels, [64, 128, 128])
        XCTAssertEqual(config.numAttentionHeads.perBlock(3), [8, 8, 8])
        XCTAssertEqual(config.motionNumAttentionHeads.perBlock(3), [4, 4, 4])
        XCTAssertEqual(config.layersPerBlock.perBlock(3), [1, 1, 1])
        XCTAssertEqual(config.crossAttentionDim, 128)
        XCTAssertEqual(config.sampleSize, .single(16))
        XCTAssertEqual(config.motionMaxSeqLength, 32)
        XCTAssertTrue(config.useMotionMidBlock)
        XCTAssertEqual(try ModelBenchmark.reference(.animatediff).unet.architecture, .animatediff)
        XCTAssertEqual(try ModelBenchmark.reference().unet.architecture, .unet3d)
    }

    func testAnimateDiffBenchmarkRunsAndReportsItsArch() throws {
        var benchmark = try ModelBenchmark.reference(.animatediff)
        benchmark.clips = 1
        benchmark.frames = 2
        benchmark.contextLength = 4
        benchmark.steps = 2
        benchmark.repeats = 1
        let report = try benchmark.run()
        XCTAssertEqual(report.arch, .animatediff)
        XCTAssertEqual(report.unetParamsM, 8.74, accuracy: 0.001)
        XCTAssertEqual(report.frames, 2)
        for (name, ms) in [("train", report.unetTrainStepMs), ("forward", report.unetForwardMs),
                           ("encode", report.vaeEncodeFramesMs), ("sample", report.sampleClipMs)] {
            XCTAssertTrue(ms.isFinite && ms > 0, "\(name): \(ms) ms")
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let json = try JSONSerialization.jsonObject(with: encoder.encode(report)) as! [String: Any]
        XCTAssertEqual(json["arch"] as? String, "animatediff")
        for key in ["threads", "clips", "frames", "unet_params_m", "unet_train_step_ms", "unet_forward_ms",
                    "vae_encode_frames_ms", "sample_clip_ms", "sample_peak_memory_mb", "openblas_core", "cpu_model"] {
            XCTAssertNotNil(json[key], key)
        }
    }

    /// --model with --arch animatediff reads unet/config.json as a UNetMotionModel (the U-Net
    /// DiffusersFolder loads has the same parameters); a U-Net of another class is refused, naming the key.
    func testModelFolderConfigs() throws {
        let folder = Self.fixtures.appendingPathComponent("animatediff_pipeline").path
        let benchmark = try ModelBenchmark.load(folder: folder, arch: .animatediff)
        guard case .animatediff(let config) = benchmark.unet else { return XCTFail("not a UNetMotionModel config") }
        XCTAssertEqual(config, try UNetMotionConfig.load(path: folder + "/unet/config.json"))
        XCTAssertEqual(try benchmark.unet.build().parameterCount, try DiffusersFolder(path: folder).loadUNet().parameterCount)

        let video = Self.fixtures.appendingPathComponent("pipeline").path
        XCTAssertEqual(try ModelBenchmark.load(folder: video, arch: .unet3d).unet.architecture, .unet3d)
        XCTAssertThrowsError(try ModelBenchmark.load(folder: video, arch: .animatediff)) { error in
            guard case ModelError.badConfig(_, let key, let reason)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "_class_name")
            XCTAssertTrue(reason.contains("UNet3DConditionModel") && reason.contains("--arch unet3d"), reason)
        }
        // An image U-Net without motion_adapter/ has no motion modules to time.
        let image = Self.fixtures.appendingPathComponent("animatediff_image").path
        XCTAssertThrowsError(try ModelBenchmark.load(folder: image, arch: .animatediff)) { error in
            guard case ModelError.missingComponent(_, let component)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertTrue(component.hasPrefix("motion_adapter/config.json"), component)
        }
    }
}
