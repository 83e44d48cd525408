import Tensor

/// Loading and saving by the module tree (principle 1): a parameter's path is its key.
extension Module {
    /// Copies every parameter from `source`, where the parameter at path `p` is stored as
    /// `prefix + p`. Names outside `prefix` are ignored. Checks everything before writing anything:
    /// missing keys, unexpected keys (under the prefix) and shape mismatches are thrown together as one
    /// `ModelError.weightsMismatch`, and the model is left untouched.
    ///
    /// The one foreign-name rule applied: old diffusers VAE checkpoints name the mid-block attention's
    /// projections `query`, `key`, `value`, `proj_attn` (sometimes as 1×1 convolution weights
    /// `[C, C, 1, 1]`); they load into `to_q`, `to_k`, `to_v`, `to_out.0`.
    ///
    /// Buffers (`namedBuffers`) are read when the source has them (shape checked like a parameter's)
    /// and otherwise keep the values the module computed.
    public func loadWeights(from source: WeightSource, prefix: String = "") throws {
        let parameters = namedParameters()
        let buffers = namedBuffers()
        var byPath: [String: Tensor] = [:]
        for (path, tensor) in parameters { byPath[path] = tensor }
        for (path, tensor) in buffers { byPath[path] = tensor }

        // Source name for each model path; legacy attention names are translated when the model has the target.
        var sourceName: [String: String] = [:]
        var unexpected: [String] = []
        var legacy: Set<String> = []
        for name in source.names where name.hasPrefix(prefix) {
            let key = String(name.dropFirst(prefix.count))
            if byPath[key] != nil {
                sourceName[key] = name
            } else if let translated = Module.modernAttentionKey(key), byPath[translated] != nil, sourceName[translated] == nil {
                sourceName[translated] = name
                legacy.insert(translated)
            } else {
                unexpected.append(name)
            }
        }
        var missing: [String] = []
        var mismatches: [(key: String, expected: [Int], found: [Int])] = []
        for (path, tensor) in parameters {
            guard let name = sourceName[path], let shape = source.shape(of: name) else {
                missing.append(prefix + path)
                continue
            }
            let fits = shape == tensor.shape
                || (legacy.contains(path) && Module.droppingTrailingOnes(shape) == tensor.shape)
            if !fits { mismatches.append((name, tensor.shape, shape)) }
        }
        for (path, tensor) in buffers {
            if let name = sourceName[path], let shape = source.shape(of: name), shape != tensor.shape {
                mismatches.append((name, tensor.shape, shape))
            }
        }
        guard missing.isEmpty, unexpected.isEmpty, mismatches.isEmpty else {
            throw ModelError.weightsMismatch(file: source.location, missing: missing,
                                             unexpected: unexpected.sorted(), shapeMismatches: mismatches)
        }
        for (path, tensor) in parameters {
            try source.read(sourceName[path]!, into: tensor.data, count: tensor.count)
        }
        for (path, tensor) in buffers {
            if let name = sourceName[path] { try source.read(name, into: tensor.data, count: tensor.count) }
        }
    }

    /// Every parameter, then every buffer, as (key, tensor), in the tree's deterministic order; the
    /// keys are diffusers' state-dict keys.
    public func stateDict(prefix: String = "") -> [(String, Tensor)] {
        (namedParameters() + namedBuffers()).map { (prefix + $0.path, $0.tensor) }
    }

    /// `…attentions.N.query.weight` → `…attentions.N.to_q.weight` (likewise key, value, proj_attn), else nil.
    static func modernAttentionKey(_ key: String) -> String? {
        var parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4, parts[parts.count - 4] == "attentions" else { return nil }
        let renames = ["query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"]
        guard let modern = renames[parts[parts.count - 2]] else { return nil }
        parts[parts.count - 2] = modern
        return parts.joined(separator: ".")
    }

    static func droppingTrailingOnes(_ shape: [Int]) -> [Int] {
        var result = shape
        while result.count > 1, result.last == 1 { result.removeLast() }
        return result
    }
}
