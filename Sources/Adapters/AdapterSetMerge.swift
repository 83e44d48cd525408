import Models
import Tensor

/// Merging (diffusers' `fuse_lora`, PEFT's `merge`): folding adapters into the base weights so that a
/// forward pass costs what the base model costs. Unlike PEFT's `unmerge`, which subtracts the delta
/// again and so leaves rounding residue, the original weights are kept and copied back: unmerging
/// restores them bit for bit. The merged weight is always original + Σ strength·B·A over the merged
/// adapters in merge order, so merging the same adapters gives the same bits however it was reached.
extension AdapterSet {
    /// Names of the adapters currently folded into the base weights, in merge order.
    public var mergedAdapterNames: [String] { mergedNames }

    /// Folds the named adapters (all enabled, unmerged ones when nil) into the base weights at their
    /// current strengths. Merged adapters then add nothing at run time (their delta is in the weight).
    /// Adapters that are trainable stay so in name only: train unmerged.
    public func merge(_ names: [String]? = nil) throws {
        let chosen = try names.map { try $0.map { try entry($0) } } ?? entries.filter(\.isEnabled)
        for entry in chosen where !mergedNames.contains(entry.name) {
            guard entry.isEnabled else {
                throw AdapterError.invalidState(adapter: entry.name, reason: "disabled; enable it before merging")
            }
            // Compute every delta before touching any weight: a failure leaves the model as it was.
            let deltas = try entry.loras.map { try $0.deltaWeight() }
            for (lora, delta) in zip(entry.loras, deltas) {
                let weight = layerByPath[lora.modulePath]!.weight
                if originalWeights[lora.modulePath] == nil {
                    originalWeights[lora.modulePath] = weight.copy()
                }
                let w = weight.data, d = delta.data
                for i in 0..<weight.count { w[i] += d[i] }
                lora.isMerged = true
            }
            mergedNames.append(entry.name)
        }
    }

    /// Takes the named adapters (all merged ones when nil) out of the base weights: every touched
    /// weight is restored from its saved original, bit for bit, and the adapters that stay merged are
    /// folded in again in their order.
    public func unmerge(_ names: [String]? = nil) throws {
        if let names { for name in names { _ = try entry(name) } }
        let leaving = Set(names ?? mergedNames)
        guard mergedNames.contains(where: leaving.contains) else { return }
        let remaining = mergedNames.filter { !leaving.contains($0) }
        for (path, original) in originalWeights {
            let weight = layerByPath[path]!.weight
            weight.data.update(from: original.data, count: weight.count)
        }
        originalWeights = [:]
        for entry in entries {
            for lora in entry.loras { lora.isMerged = false }
        }
        mergedNames = []
        try merge(remaining)
    }
}
