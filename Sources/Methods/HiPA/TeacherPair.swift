import Checkpoints
import Diffusion
import Foundation
import Tensor

/// One cached HiPA teacher pair: the starting noise z_T, the prompt, and the teacher's final latents
/// x₀* (the frozen base model sampling from z_T with many DDIM steps and guidance).
public struct TeacherPair: Sendable {
    public var prompt: String
    public var noise: Tensor
    public var target: Tensor

    public init(prompt: String, noise: Tensor, target: Tensor) {
        self.prompt = prompt
        self.noise = noise
        self.target = target
    }

    /// Generates one pair per prompt with `pipeline` as it is (no adaptors should be active): pair i
    /// starts from the noise of `RandomGenerator(seed).derived(i)`, so a pair does not depend on the others.
    public static func generate(pipeline: TextToVideoPipeline, prompts: [String], config: HiPAConfig,
                                progress: ((Int, Int) -> Void)? = nil) throws -> [TeacherPair] {
        let root = RandomGenerator(seed: config.seed).derived(0x7EAC_4E2)
        return try prompts.enumerated().map { index, prompt in
            var generator = root.derived(UInt64(index))
            let noise = generator.normal(pipeline.latentShape(frames: config.frames))
            let video = try pipeline.generate(prompt: prompt, frames: config.frames, steps: config.teacherSteps,
                                              guidance: config.teacherGuidance, seed: config.seed, scheduler: .ddim, initialLatents: noise)
            progress?(index + 1, prompts.count)
            return TeacherPair(prompt: prompt, noise: noise, target: video.latents)
        }
    }

    /// Writes the pairs (tensors `pairs.N.noise`, `pairs.N.target`, prompts in the metadata), atomically.
    public static func write(_ pairs: [TeacherPair], to path: String) throws {
        var tensors: [SafeTensors.TensorToWrite] = []
        for (index, pair) in pairs.enumerated() {
            tensors.append(.init(name: "pairs.\(index).noise", shape: pair.noise.shape, values: pair.noise.values))
            tensors.append(.init(name: "pairs.\(index).target", shape: pair.target.shape, values: pair.target.values))
        }
        let prompts = String(decoding: try JSONEncoder().encode(pairs.map(\.prompt)), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: ["format": "pt", "prompts": prompts], to: path)
    }

    /// Reads a file written by `write`.
    public static func read(_ path: String) throws -> [TeacherPair] {
        let file = try SafeTensorsFile(path: path)
        guard let text = file.metadata["prompts"], let prompts = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
            throw MethodError.badRun(folder: path, reason: "the teacher pairs have no readable prompt list in their metadata")
        }
        func tensor(_ name: String) throws -> Tensor {
            guard let entry = file.entries[name] else {
                throw MethodError.badRun(folder: path, reason: "the teacher pairs lack \(name)")
            }
            let tensor = Tensor(uninitialized: entry.shape)
            try file.read(name, into: tensor.data, count: tensor.count)
            return tensor
        }
        return try prompts.enumerated().map { index, prompt in
            TeacherPair(prompt: prompt, noise: try tensor("pairs.\(index).noise"), target: try tensor("pairs.\(index).target"))
        }
    }
}
