import Foundation
import Methods
import XCTest

/// MotionDirector's config under the reference's keys.
final class MotionDirectorConfigTests: XCTestCase {
    func decode(_ json: String) throws -> MotionDirectorConfig {
        try JSONDecoder().decode(MotionDirectorConfig.self, from: Data(json.utf8))
    }

    func testDefaultsFollowTheMethodWithOurRateAndLength() throws {
        let config = try decode("{}")
        XCTAssertEqual(config, MotionDirectorConfig())
        XCTAssertEqual(config.loraRank, 32)
        XCTAssertEqual(config.loraDropout, 0.1)
        // Ours, from pilots on the shipped base: 1e-3 × 1 500 steps (the reference's 5e-4 × 300 did not learn the zigzag).
        XCTAssertEqual(config.learningRate, 1e-3)
        XCTAssertEqual(config.maxTrainSteps, 1500)
        XCTAssertEqual(config.checkpointingSteps, 100)
        XCTAssertEqual(config.validationSteps, 300)
        // Image animation's appearance LoRA keeps the reference's single-image settings.
        XCTAssertEqual(MotionDirectorConfig.singleImage.learningRate, 5e-4)
        XCTAssertEqual(MotionDirectorConfig.singleImage.maxTrainSteps, 300)
        XCTAssertEqual(config.lrScheduler, "constant")
        XCTAssertEqual(config.debiasBeta, 1)
        XCTAssertEqual(config.spatialLoRAOffProbability, 0.2)
        XCTAssertEqual(config.trainerOptions(clips: 1).adamWeightDecay, 1e-2)
        XCTAssertEqual(config.trainerOptions(clips: 3).adamWeightDecay, 1e-4)
        XCTAssertEqual(config.trainerOptions(clips: 3).maxGradNorm, 0)
    }

    func testReferenceKeysAndTopLevelSamplingKeys() throws {
        let config = try decode("""
        {"lora_rank": 16, "learning_rate": 0.001, "adam_weight_decay": 0.01, "max_train_steps": 150, "checkpointing_steps": 50,
         "validation_steps": 25, "single_spatial_lora": true, "random_hflip_img": 0.5, "debias_beta": 0.5,
         "n_sample_frames": 12, "width": 96,
         "train_data": {"n_sample_frames": 16, "height": 64, "fallback_prompt": "a ball"},
         "validation_data": {"prompt": "a cat", "num_inference_steps": 10, "spatial_scale": 0.3, "noise_prior": 0.5}}
        """)
        XCTAssertEqual(config.loraRank, 16)
        XCTAssertEqual(config.trainerOptions(clips: 3).adamWeightDecay, 0.01)
        XCTAssertEqual(config.maxTrainSteps, 150)
        XCTAssertTrue(config.singleSpatialLoRA)
        XCTAssertEqual(config.trainData.sampleFrames, 16, "train_data wins over the top level")
        XCTAssertEqual(config.trainData.width, 96)
        XCTAssertEqual(config.trainData.height, 64)
        XCTAssertEqual(config.trainData.fallbackPrompt, "a ball")
        XCTAssertEqual(config.validationData.prompt, ["a cat"])
        XCTAssertEqual(config.validationData.noisePrior, 0.5)
        XCTAssertTrue(MotionDirectorConfig.knownKeys.contains("validation_data.spatial_scale"))
        XCTAssertTrue(MotionDirectorConfig.ignoredReferenceKeys.contains("mixed_precision"))
        // The encoded form reads back the same.
        XCTAssertEqual(try JSONDecoder().decode(MotionDirectorConfig.self, from: config.encoded()), config)
    }

    func testOutOfRangeValuesNameTheirKey() throws {
        for (json, key) in [(#"{"lora_rank": 0}"#, "lora_rank"), (#"{"lora_unet_dropout": 1}"#, "lora_unet_dropout"),
                            (#"{"spatial_lora_off_probability": 2}"#, "spatial_lora_off_probability"),
                            (#"{"train_data": {"n_sample_frames": 1}}"#, "train_data.n_sample_frames"),
                            (#"{"validation_data": {"noise_prior": 1.5}}"#, "validation_data.noise_prior"),
                            (#"{"max_train_steps": -1}"#, "max_train_steps"), (#"{"lr_scheduler": "warp"}"#, "lr_scheduler")] {
            XCTAssertThrowsError(try decode(json).validate(file: "motion.yaml"), json) { error in
                XCTAssertTrue("\(error)".hasPrefix("motion.yaml: \(key):"), "\(error)")
            }
        }
    }
}
