import Adapters

extension BaseModelIdentity {
    /// Refuses to resume, in `folder`, a run that was trained on `recorded` with this other model.
    func requireSameModel(as recorded: BaseModelIdentity, folder: String) throws {
        guard recorded.unetConfigSHA256 == unetConfigSHA256 else {
            throw MethodError.badRun(folder: folder, reason: "the run was trained on \(recorded.name) "
                + "(U-Net config \(recorded.unetConfigSHA256.prefix(12))), not on \(name) "
                + "(U-Net config \(unetConfigSHA256.prefix(12))); resume it with the same --model")
        }
    }
}
