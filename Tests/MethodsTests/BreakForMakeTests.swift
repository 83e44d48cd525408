@testable import Adapters
import Checkpoints
import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// Break-for-Make: PLP initialisation and masks, the preconditioner, assembly checks, runs and resume.
final class BreakForMakeTests: XCTestCase {
    private var folders: [String] = []

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    private func folder(_ name: String) -> String {
        let folder = Support.temporaryFolder(name)
        folders.append(folder)
        return folder
    }

    private func images(_ caption: String, seed: UInt64) -> [MotionTrainingClip] {
        (0..<2).map { index in
            MotionTrainingClip(name: "img\(index).png", caption: caption,
                               latents: Support.tensor([1, 4, 1, 10, 10], seed: seed + UInt64(index)),
                               flippedLatents: Support.tensor([1, 4, 1, 10, 10], seed: seed + 10 + UInt64(index)))
        }
    }

    private func config(steps: Int, seed: UInt64 = 0, rank: Int = 2, checkpointEvery: Int = 100, accumulation: Int = 1) -> BreakForMakeConfig {
        BreakForMakeConfig(rank: rank, learningRate: 1e-2, maxTrainSteps: steps, gradientAccumulationSteps: accumulation,
                           checkpointingSteps: checkpointEvery, validationSteps: 0, seed: seed)
    }

    private func breakRun(_ role: BreakTraining.Role, steps: Int, seed: UInt64 = 0, rank: Int = 2, checkpointEvery: Int = 100,
                          accumulation: Int = 1, in folder: String? = nil) throws -> BreakTraining {
        let pipeline = try Support.pipeline()
        return try BreakTraining(newRunIn: folder ?? self.folder("break-\(role.rawValue)"), role: role, pipeline: pipeline,
                                 config: config(steps: steps, seed: seed, rank: rank, checkpointEvery: checkpointEvery,
                                                accumulation: accumulation),
                                 images: images(role == .content ? "a <cat>" : "a picture in <ink> style", seed: 40),
                                 auxiliary: images(role == .content ? "a picture in mosaic style" : "a dog", seed: 60),
                                 token: role == .content ? "<cat>" : "<ink>", baseModel: Support.identity(pipeline))
    }

    func testInitialisationFollowsTheFormulas() throws {
        let geometry = LoRAGeometry.linear(inFeatures: 8, outFeatures: 8)
        var generator = RandomGenerator(seed: 3)
        var replay = generator
        let (down, up) = PLPAdapter.initialFactors(geometry: geometry, rank: 4, generator: &generator)
        // The frozen A columns and frozen B rows are rows S₁ and S₂ of one 1280 × r Q with orthonormal
        // columns (the reference's basis, whatever the layer's width), drawn in this order.
        _ = replay.normal([4, 8], std: 0.25)
        let q = PLPAdapter.orthonormal(rows: PLPAdapter.basisRows, columns: 4, generator: &replay)
        let (s1, s2) = PLPAdapter.frozenRowSets(basis: PLPAdapter.basisRows, half: 4, generator: &replay)
        XCTAssertTrue(Set(s1).isDisjoint(with: s2))
        XCTAssertEqual(s2, (0..<PLPAdapter.basisRows).filter { !s1.contains($0) }.prefix(4).map { $0 })
        for a in 0..<4 {
            for b in 0..<4 {
                XCTAssertEqual((0..<PLPAdapter.basisRows).reduce(0.0) { $0 + q[$1][a] * q[$1][b] }, a == b ? 1 : 0, accuracy: 1e-9)
            }
        }
        for j in 0..<4 { for k in 0..<4 { XCTAssertEqual(down.data[k * 8 + j], Float(q[s1[j]][k])) } }
        for i in 0..<4 { for k in 0..<4 { XCTAssertEqual(up.data[i * 4 + k], Float(q[s2[i]][k])) } }
        // So the frozen product B₁A₁ the adapter starts with is small: rows of a 1280-row basis.
        var product = 0.0
        for i in 0..<4 { for j in 0..<4 {
            let entry = (0..<4).reduce(0.0) { $0 + Double(up.data[i * 4 + $1]) * Double(down.data[$1 * 8 + j]) }
            product += entry * entry
        } }
        XCTAssertLessThan(product.squareRoot(), 0.05)
        // B₂ = 0; A₂ is a Gaussian draw (nonzero).
        XCTAssertTrue((16..<32).allSatisfy { up.data[$0] == 0 })
        XCTAssertTrue((0..<4).contains { k in (4..<8).contains { down.data[k * 8 + $0] != 0 } })
        // Where in ≠ out: B = 0.
        var other = RandomGenerator(seed: 3)
        let (_, crossUp) = PLPAdapter.initialFactors(geometry: .linear(inFeatures: 16, outFeatures: 8), rank: 4, generator: &other)
        XCTAssertTrue(crossUp.values.allSatisfy { $0 == 0 })
        // More columns than rows: orthonormal rows instead.
        var wide = RandomGenerator(seed: 5)
        let wideQ = PLPAdapter.orthonormal(rows: 3, columns: 5, generator: &wide)
        for a in 0..<3 { for b in 0..<3 { XCTAssertEqual(zip(wideQ[a], wideQ[b]).reduce(0) { $0 + $1.0 * $1.1 }, a == b ? 1 : 0, accuracy: 1e-12) } }
    }

    func testSameSeedGivesIdenticalFrozenHalvesAndOtherSeedsDiffer() throws {
        let content = try breakRun(.content, steps: 0), style = try breakRun(.style, steps: 0)
        XCTAssertFalse(content.loras.isEmpty)
        XCTAssertTrue(content.loras.allSatisfy { $0.modulePath.contains(".attentions.") })
        XCTAssertTrue(content.loras.contains { $0.modulePath.hasSuffix("attn2.to_k") } && content.loras.contains { $0.modulePath.hasSuffix("attn1.to_out.0") })
        for (a, b) in zip(content.loras, style.loras) {
            XCTAssertEqual(a.down.values, b.down.values)
            XCTAssertEqual(a.up.values, b.up.values)
        }
        let other = try breakRun(.style, steps: 0, seed: 9)
        XCTAssertNotEqual(content.loras[0].down.values, other.loras[0].down.values)
    }

    func testMasksFreezeExactlyTheStatedHalves() throws {
        let run = try breakRun(.content, steps: 3)
        let before = run.loras.map { ($0.down.values, $0.up.values) }
        try run.run(output: run.folder + "/content.safetensors")
        var ownMoved = false, partnerMoved = false
        for (lora, (down, up)) in zip(run.loras, before) {
            let inputs = lora.geometry.inputs, frozenColumns = inputs / 2, frozenRows = lora.geometry.outputs / 2
            for k in 0..<lora.rank {
                for j in 0..<inputs {
                    let index = k * inputs + j
                    if j < frozenColumns { XCTAssertEqual(lora.down.data[index].bitPattern, down[index].bitPattern, lora.modulePath) }
                    else if lora.down.data[index] != down[index] { ownMoved = true }
                }
            }
            for index in 0..<lora.up.count {
                if index / lora.rank < frozenRows { XCTAssertEqual(lora.up.data[index].bitPattern, up[index].bitPattern, lora.modulePath) }
                else if lora.up.data[index] != up[index] { partnerMoved = true }
            }
        }
        XCTAssertTrue(ownMoved, "A₂ should learn")
        XCTAssertTrue(partnerMoved, "B₂ should learn from the auxiliary set")
    }

    func testEachLossReachesOnlyItsHalf() throws {
        let run = try breakRun(.content, steps: 1)
        var random = RandomGenerator(seed: 1)
        // The auxiliary backward runs inside `loss`: after it only B has gradients.
        let loss = try run.loss(step: 0, random: &random)
        XCTAssertTrue(run.loras.allSatisfy { $0.down.grad == nil })
        XCTAssertTrue(run.loras.contains { $0.up.grad != nil })
        let upGradients = run.loras.map { $0.up.grad?.values }
        try loss.backward()
        XCTAssertTrue(run.loras.contains { $0.down.grad != nil })
        XCTAssertEqual(run.loras.map { $0.up.grad?.values }, upGradients, "the own loss must not reach B")
    }

    func testAccumulatedStepIsTheMeanOfItsMicroSteps() throws {
        // A toy: micro-step loss (w − sample)², so the summed gradient is the mean of 2(w − sample).
        let w = Tensor(scalar: 0.5)
        w.requiresGrad = true
        var random = RandomGenerator(seed: 7)
        var seen: [(sample: Int, weight: Float, draw: Float)] = []
        let loss = try GradientAccumulation.step(2, count: 3, random: &random) { sample, weight, random in
            seen.append((sample, weight, random.uniformValues(count: 1)[0]))
            let offset = w - Float(sample)
            return try (offset * offset).sum()
        }
        XCTAssertEqual(seen.map(\.sample), [6, 7, 8])
        XCTAssertTrue(seen.allSatisfy { $0.weight == Float(1) / 3 })
        XCTAssertEqual(Set(seen.map(\.draw)).count, 3, "each micro-step draws its own random numbers")
        let expected: Float = (5.5 * 5.5 + 6.5 * 6.5 + 7.5 * 7.5) / 3
        XCTAssertEqual(loss.item, expected, accuracy: 1e-4)
        XCTAssertEqual(try XCTUnwrap(w.grad).values[0], Float(2 * (0.5 - 6) + 2 * (0.5 - 7)) / 3, accuracy: 1e-4, "before the trainer's backward: 2 of 3")
        try loss.backward()
        XCTAssertEqual(try XCTUnwrap(w.grad).values[0], Float(2 * (0.5 - 7)), accuracy: 1e-4)

        // One micro-step is the plain step: the same sample, the generator itself, no weighting.
        var plain = RandomGenerator(seed: 7), single = RandomGenerator(seed: 7)
        let one = try GradientAccumulation.step(5, count: 1, random: &single) { sample, weight, random in
            XCTAssertEqual(sample, 5)
            XCTAssertEqual(weight, 1)
            return Tensor(scalar: random.uniformValues(count: 1)[0])
        }
        XCTAssertEqual(one.item, plain.uniformValues(count: 1)[0])
    }

    func testAccumulatedBreakStepKeepsEachLossOnItsHalf() throws {
        let run = try breakRun(.content, steps: 2, accumulation: 3)
        let ups = run.loras.map(\.up.values), downs = run.loras.map(\.down.values)
        var random = RandomGenerator(seed: 1)
        let loss = try run.loss(step: 0, random: &random)
        // The micro-steps but the last have back-propagated both losses; the returned loss reaches A only.
        let upGradients = run.loras.map { $0.up.grad?.values }
        XCTAssertTrue(run.loras.contains { $0.down.grad != nil })
        try loss.backward()
        XCTAssertEqual(run.loras.map { $0.up.grad?.values }, upGradients, "the own loss must not reach B")
        // A whole run trains and records the setting; the frozen halves never move.
        let other = try breakRun(.content, steps: 2, accumulation: 3)
        try other.run(output: other.folder + "/content.safetensors")
        for (index, lora) in other.loras.enumerated() {
            let downMask = try XCTUnwrap(lora.down.gradMask).values, upMask = try XCTUnwrap(lora.up.gradMask).values
            XCTAssertNotEqual(lora.down.values, downs[index])
            for i in downMask.indices where downMask[i] == 0 { XCTAssertEqual(lora.down.values[i], downs[index][i]) }
            for i in upMask.indices where upMask[i] == 0 { XCTAssertEqual(lora.up.values[i], ups[index][i]) }
        }
        let metadata = try SafeTensorsFile(path: other.folder + "/content.safetensors").metadata
        XCTAssertTrue(try XCTUnwrap(metadata["training"]).contains("\"gradient_accumulation_steps\":3"), "\(metadata)")
    }

    func testRunRecordsWithoutAccumulationReadAsOneMicroStep() throws {
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config(steps: 3, accumulation: 4))) as! [String: Any]
        XCTAssertEqual(json["gradient_accumulation_steps"] as? Int, 4)
        json["gradient_accumulation_steps"] = nil
        let old = try JSONDecoder().decode(BreakForMakeConfig.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertEqual(old, config(steps: 3, accumulation: 1))
        XCTAssertThrowsError(try config(steps: 3, accumulation: 0).validate(file: "f.json")) { error in
            XCTAssertTrue("\(error)".contains("gradient_accumulation_steps"), "\(error)")
        }
    }

    func testPartnerHalfTrainsAtATenthOfTheRate() throws {
        let run = try breakRun(.style, steps: 1)
        let groups = run.training.trainer.optimizer.groups
        XCTAssertEqual(groups.count, 2)
        let rates = Dictionary(uniqueKeysWithValues: groups.flatMap { group in group.parameters.map { ($0.name ?? "", group.learningRate) } })
        for (key, rate) in rates {
            XCTAssertEqual(rate, key.hasSuffix("lora_B.weight") ? 1e-2 : 1e-3, accuracy: 1e-9, key)
        }
    }

    func testPreconditionedGradientMatchesAHandComputation() throws {
        let lora = try LoRA(adapterName: "x", modulePath: "m", geometry: .linear(inFeatures: 3, outFeatures: 2), alpha: 2,
                            down: Tensor(shape: [2, 3], values: [1, 0, 2, 0, 1, 1]), up: Tensor(shape: [2, 2], values: [1, 2, 0, 1]))
        let preconditioner = try RiemannianPreconditioner(lora: lora, delta: 0.5)
        // A Aᵀ + δI = [[5.5, 2], [2, 2.5]], inverse = [[2.5, -2], [-2, 5.5]] / 9.75.
        let gradB = try preconditioner.preconditionUp(Tensor(shape: [2, 2], values: [1, 0, 0, 1]))
        let expectedB: [Float] = [2.5, -2, -2, 5.5].map { $0 / 9.75 }
        for (a, b) in zip(gradB.values, expectedB) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        // Bᵀ B + δI = [[1.5, 2], [2, 5.5]], inverse = [[5.5, -2], [-2, 1.5]] / 4.25; times G = [[1, 2, 3], [0, 1, 0]].
        let gradA = try preconditioner.preconditionDown(Tensor(shape: [2, 3], values: [1, 2, 3, 0, 1, 0]))
        let expectedA: [Float] = [5.5, 9, 16.5, -2, -2.5, -6].map { $0 / 4.25 }
        for (a, b) in zip(gradA.values, expectedA) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testMakeRefusesMismatchedHalvesAndAssemblesMatchingOnes() throws {
        let content = try breakRun(.content, steps: 1), style = try breakRun(.style, steps: 1)
        let otherSeed = try breakRun(.style, steps: 1, seed: 7), otherRank = try breakRun(.style, steps: 1, rank: 3)
        let files = [content, style, otherSeed, otherRank].enumerated().map { index, run -> String in
            let path = run.folder + "/adapter\(index).safetensors"
            try? run.run(output: path)
            return path
        }
        let pipeline = try Support.pipeline()
        XCTAssertThrowsError(try PLPAssembly.assemble(content: files[0], style: files[2], model: pipeline.unet, adapterName: "m")) { error in
            XCTAssertTrue("\(error)".contains("frozen half"), "\(error)")
        }
        XCTAssertThrowsError(try PLPAssembly.assemble(content: files[0], style: files[3], model: pipeline.unet, adapterName: "m")) { error in
            XCTAssertTrue("\(error)".contains("rank"), "\(error)")
        }
        XCTAssertThrowsError(try PLPAssembly.assemble(content: files[1], style: files[0], model: pipeline.unet, adapterName: "m")) { error in
            XCTAssertTrue("\(error)".contains("train-content"), "\(error)")
        }
        let made = try PLPAssembly.assemble(content: files[0], style: files[1], model: pipeline.unet, adapterName: "m")
        for (lora, (c, s)) in zip(made, zip(content.loras, style.loras)) {
            XCTAssertEqual(lora.down.values, c.down.values)
            XCTAssertEqual(lora.up.values, s.up.values)
        }
        // The scratch loads leave the model without adapters.
        XCTAssertTrue(AdapterSet(model: pipeline.unet).adaptableLayers.allSatisfy { $0.layer.deltas.isEmpty })
    }

    func testMakeKeepsLoadedWeightsAndResumesBitExactly() throws {
        let content = try breakRun(.content, steps: 2), style = try breakRun(.style, steps: 2)
        let contentFile = content.folder + "/content.safetensors", styleFile = style.folder + "/style.safetensors"
        try content.run(output: contentFile)
        try style.run(output: styleFile)
        func make(_ name: String, steps: Int, checkpointEvery: Int, accumulation: Int = 1) throws -> MakeTraining {
            let pipeline = try Support.pipeline()
            return try MakeTraining(newRunIn: folder(name), pipeline: pipeline,
                                    config: config(steps: steps, checkpointEvery: checkpointEvery, accumulation: accumulation),
                                    contentAdapter: contentFile, styleAdapter: styleFile, contentImages: images("a <cat>", seed: 40),
                                    styleImages: images("a picture in <ink> style", seed: 50), baseModel: Support.identity(pipeline))
        }
        let fresh = try make("make-fresh", steps: 0, checkpointEvery: 100)
        for (lora, (c, s)) in zip(fresh.loras, zip(content.loras, style.loras)) {
            XCTAssertEqual(lora.down.values, c.down.values, "loaded, not re-initialised")
            XCTAssertEqual(lora.up.values, s.up.values)
        }
        /// A whole 4-step run, and one interrupted after step 3 and resumed from its step-2 checkpoint: the same weights.
        func wholeAndResumed(accumulation: Int) throws -> (whole: MakeTraining, resumed: MakeTraining) {
            let whole = try make("make-whole-\(accumulation)", steps: 4, checkpointEvery: 2, accumulation: accumulation)
            try whole.run(output: whole.folder + "/made.safetensors")
            let interrupted = try make("make-cut-\(accumulation)", steps: 4, checkpointEvery: 2, accumulation: accumulation)
            interrupted.training.onStep = { report in if report.step == 3 { throw CancellationError() } }
            XCTAssertThrowsError(try interrupted.run(output: interrupted.folder + "/made.safetensors"))
            let resumed = try MakeTraining(resumingIn: interrupted.folder, pipeline: Support.pipeline(),
                                           baseModel: Support.identity(Support.pipeline()))
            XCTAssertEqual(resumed.training.step, 2)
            try resumed.run(output: resumed.folder + "/made.safetensors")
            XCTAssertEqual(try Support.values(resumed.adapters, [MakeTraining.adapterName]),
                           try Support.values(whole.adapters, [MakeTraining.adapterName]), "accumulation \(accumulation)")
            return (whole, resumed)
        }
        let whole = try wholeAndResumed(accumulation: 1).whole
        // Accumulated micro-steps train otherwise and resume as exactly.
        let accumulated = try wholeAndResumed(accumulation: 3).whole
        XCTAssertNotEqual(try Support.values(accumulated.adapters, [MakeTraining.adapterName]),
                          try Support.values(whole.adapters, [MakeTraining.adapterName]))
        // Frozen halves stayed the shared ones.
        for (lora, c) in zip(whole.loras, content.loras) {
            let inputs = lora.geometry.inputs
            for k in 0..<lora.rank { for j in 0..<(inputs / 2) { XCTAssertEqual(lora.down.data[k * inputs + j], c.down.data[k * inputs + j]) } }
        }
    }

    func testBreakRunResumesBitExactly() throws {
        try checkBreakRunResumesBitExactly(accumulation: 1)
    }

    func testAccumulatedBreakRunResumesBitExactly() throws {
        try checkBreakRunResumesBitExactly(accumulation: 3)
    }

    private func checkBreakRunResumesBitExactly(accumulation: Int) throws {
        let whole = try breakRun(.style, steps: 4, checkpointEvery: 2, accumulation: accumulation)
        try whole.run(output: whole.folder + "/style.safetensors")
        let cut = try breakRun(.style, steps: 4, checkpointEvery: 2, accumulation: accumulation)
        cut.training.onStep = { report in if report.step == 3 { throw CancellationError() } }
        XCTAssertThrowsError(try cut.run(output: cut.folder + "/style.safetensors"))
        let resumed = try BreakTraining(resumingIn: cut.folder, pipeline: Support.pipeline(), baseModel: Support.identity(Support.pipeline()))
        XCTAssertEqual(resumed.training.step, 2)
        try resumed.run(output: resumed.folder + "/style.safetensors")
        XCTAssertEqual(try Support.values(resumed.adapters, [BreakTraining.adapterName]),
                       try Support.values(whole.adapters, [BreakTraining.adapterName]))
    }
}
