import Foundation
import Models

/// A diffusers scheduler_config.json: the keys of `DDPMScheduler`, `DDIMScheduler` and
/// `EulerDiscreteScheduler`, each defaulting as diffusers does when absent (or null). Keys other
/// schedulers use (`skip_prk_steps`, …) are ignored; values this implementation does not support
/// are rejected with the key named.
public struct SchedulerConfig: Codable, Sendable, Equatable {
    public enum BetaSchedule: String, Codable, Sendable, CaseIterable {
        case linear, scaledLinear = "scaled_linear", squaredCosCapV2 = "squaredcos_cap_v2"
    }
    public enum PredictionType: String, Codable, Sendable, CaseIterable {
        case epsilon, vPrediction = "v_prediction", sample
    }
    public enum TimestepSpacing: String, Codable, Sendable, CaseIterable {
        case leading, trailing, linspace
    }
    /// DDPM's posterior variance choices this implementation supports (the learned ones need a
    /// model that predicts variance).
    public enum VarianceType: String, Codable, Sendable, CaseIterable {
        case fixedSmall = "fixed_small", fixedSmallLog = "fixed_small_log", fixedLarge = "fixed_large"
    }
    public enum InterpolationType: String, Codable, Sendable, CaseIterable {
        case linear
    }
    public enum FinalSigmasType: String, Codable, Sendable, CaseIterable {
        case zero, sigmaMin = "sigma_min"
    }

    public var className: String?
    public var numTrainTimesteps: Int = 1000
    public var betaStart: Double = 0.0001
    public var betaEnd: Double = 0.02
    public var betaSchedule: BetaSchedule = .linear
    /// Explicit betas, replacing the schedule (`trained_betas`).
    public var trainedBetas: [Double]?
    public var predictionType: PredictionType = .epsilon
    /// nil: the scheduler's own default (`leading` for DDPM and DDIM, `linspace` for Euler).
    public var timestepSpacing: TimestepSpacing?
    public var stepsOffset: Int = 0
    public var clipSample: Bool = true
    public var clipSampleRange: Double = 1.0
    public var setAlphaToOne: Bool = true
    public var rescaleBetasZeroSnr: Bool = false
    public var varianceType: VarianceType = .fixedSmall
    public var interpolationType: InterpolationType = .linear
    public var finalSigmasType: FinalSigmasType = .zero

    public init() {}

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps"
        case betaStart = "beta_start"
        case betaEnd = "beta_end"
        case betaSchedule = "beta_schedule"
        case trainedBetas = "trained_betas"
        case predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing"
        case stepsOffset = "steps_offset"
        case clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range"
        case setAlphaToOne = "set_alpha_to_one"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
        case varianceType = "variance_type"
        case interpolationType = "interpolation_type"
        case finalSigmasType = "final_sigmas_type"
        // Read only to reject what is not implemented.
        case useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas"
        case thresholding
        case timestepType = "timestep_type"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func choice<E: RawRepresentable & CaseIterable>(_ key: CodingKeys, _ type: E.Type) throws -> E? where E.RawValue == String {
            guard let raw = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let value = E(rawValue: raw) else {
                let allowed = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
                throw DecodingError.dataCorruptedError(forKey: key, in: container,
                    debugDescription: "unsupported value \"\(raw)\"; supported: \(allowed)")
            }
            return value
        }
        func rejectTrue(_ key: CodingKeys, _ why: String) throws {
            if try container.decodeIfPresent(Bool.self, forKey: key) == true {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "true is not supported: \(why)")
            }
        }
        className = try container.decodeIfPresent(String.self, forKey: .className)
        numTrainTimesteps = try container.decodeIfPresent(Int.self, forKey: .numTrainTimesteps) ?? numTrainTimesteps
        guard numTrainTimesteps >= 2 else {
            throw DecodingError.dataCorruptedError(forKey: .numTrainTimesteps, in: container, debugDescription: "must be at least 2, found \(numTrainTimesteps)")
        }
        betaStart = try container.decodeIfPresent(Double.self, forKey: .betaStart) ?? betaStart
        betaEnd = try container.decodeIfPresent(Double.self, forKey: .betaEnd) ?? betaEnd
        betaSchedule = try choice(.betaSchedule, BetaSchedule.self) ?? betaSchedule
        trainedBetas = try container.decodeIfPresent([Double].self, forKey: .trainedBetas)
        if let trainedBetas, trainedBetas.count != numTrainTimesteps {
            throw DecodingError.dataCorruptedError(forKey: .trainedBetas, in: container,
                debugDescription: "holds \(trainedBetas.count) betas but num_train_timesteps is \(numTrainTimesteps)")
        }
        predictionType = try choice(.predictionType, PredictionType.self) ?? predictionType
        timestepSpacing = try choice(.timestepSpacing, TimestepSpacing.self)
        stepsOffset = try container.decodeIfPresent(Int.self, forKey: .stepsOffset) ?? stepsOffset
        clipSample = try container.decodeIfPresent(Bool.self, forKey: .clipSample) ?? clipSample
        clipSampleRange = try container.decodeIfPresent(Double.self, forKey: .clipSampleRange) ?? clipSampleRange
        setAlphaToOne = try container.decodeIfPresent(Bool.self, forKey: .setAlphaToOne) ?? setAlphaToOne
        rescaleBetasZeroSnr = try container.decodeIfPresent(Bool.self, forKey: .rescaleBetasZeroSnr) ?? rescaleBetasZeroSnr
        varianceType = try choice(.varianceType, VarianceType.self) ?? varianceType
        interpolationType = try choice(.interpolationType, InterpolationType.self) ?? interpolationType
        finalSigmasType = try choice(.finalSigmasType, FinalSigmasType.self) ?? finalSigmasType
        try rejectTrue(.useKarrasSigmas, "Karras sigmas are not implemented")
        try rejectTrue(.useExponentialSigmas, "exponential sigmas are not implemented")
        try rejectTrue(.useBetaSigmas, "beta sigmas are not implemented")
        try rejectTrue(.thresholding, "dynamic thresholding is not implemented")
        if let type = try container.decodeIfPresent(String.self, forKey: .timestepType), type != "discrete" {
            throw DecodingError.dataCorruptedError(forKey: .timestepType, in: container, debugDescription: "unsupported value \"\(type)\"; supported: \"discrete\"")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(className, forKey: .className)
        try container.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try container.encode(betaStart, forKey: .betaStart)
        try container.encode(betaEnd, forKey: .betaEnd)
        try container.encode(betaSchedule, forKey: .betaSchedule)
        try container.encodeIfPresent(trainedBetas, forKey: .trainedBetas)
        try container.encode(predictionType, forKey: .predictionType)
        try container.encodeIfPresent(timestepSpacing, forKey: .timestepSpacing)
        try container.encode(stepsOffset, forKey: .stepsOffset)
        try container.encode(clipSample, forKey: .clipSample)
        try container.encode(clipSampleRange, forKey: .clipSampleRange)
        try container.encode(setAlphaToOne, forKey: .setAlphaToOne)
        try container.encode(rescaleBetasZeroSnr, forKey: .rescaleBetasZeroSnr)
        try container.encode(varianceType, forKey: .varianceType)
        try container.encode(interpolationType, forKey: .interpolationType)
        try container.encode(finalSigmasType, forKey: .finalSigmasType)
    }

    /// Reads scheduler/scheduler_config.json; a bad value throws `ModelError.badConfig` naming the
    /// file and the key.
    public static func load(path: String) throws -> SchedulerConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.badConfig(file: path, key: "", reason: "cannot read the file")
        }
        return try decode(data, file: path)
    }

    /// Decodes JSON `data`, naming `file` in errors.
    public static func decode(_ data: Data, file: String) throws -> SchedulerConfig {
        do {
            return try JSONDecoder().decode(SchedulerConfig.self, from: data)
        } catch let error as DecodingError {
            switch error {
            case let .dataCorrupted(context):
                let key = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw ModelError.badConfig(file: file, key: key, reason: key.isEmpty ? "not valid JSON" : context.debugDescription)
            case let .typeMismatch(type, context), let .valueNotFound(type, context):
                throw ModelError.badConfig(file: file, key: context.codingPath.map(\.stringValue).joined(separator: "."),
                                           reason: "expected a value of type \(type)")
            case let .keyNotFound(key, _):
                throw ModelError.badConfig(file: file, key: key.stringValue, reason: "missing")
            @unknown default:
                throw ModelError.badConfig(file: file, key: "", reason: "\(error)")
            }
        }
    }
}
