import Models

/// The schedulers this package implements, named by their diffusers `_class_name`.
public enum SchedulerKind: String, CaseIterable, Sendable {
    case ddpm = "DDPMScheduler"
    case ddim = "DDIMScheduler"
    case eulerDiscrete = "EulerDiscreteScheduler"

    /// A scheduler of this kind over `config` (DDIM with eta 0).
    public func make(config: SchedulerConfig) -> any Scheduler {
        switch self {
        case .ddpm: return DDPMScheduler(config: config)
        case .ddim: return DDIMScheduler(config: config)
        case .eulerDiscrete: return EulerDiscreteScheduler(config: config)
        }
    }

    /// The kind a config's `_class_name` names; `file` is named in the error for anything else.
    public static func named(in config: SchedulerConfig, file: String) throws -> SchedulerKind {
        guard let name = config.className else {
            throw ModelError.badConfig(file: file, key: "_class_name", reason: "missing")
        }
        guard let kind = SchedulerKind(rawValue: name) else {
            let known = allCases.map(\.rawValue).joined(separator: ", ")
            throw ModelError.badConfig(file: file, key: "_class_name", reason: "unsupported scheduler \"\(name)\"; supported: \(known)")
        }
        return kind
    }
}
