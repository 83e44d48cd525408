import Diffusion
import Foundation
import Tensor
import XCTest
@testable import Methods

/// DECOR: the SVD, the projection's algebra, encoding of words, and the pipeline hook.
final class DECORTests: XCTestCase {
    private func randomRows(_ n: Int, _ d: Int, seed: UInt64) -> [[Float]] {
        let values = Support.tensor([n, d], seed: seed).values
        return (0..<n).map { Array(values[($0 * d)..<(($0 + 1) * d)]) }
    }

    private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    func testJacobiSVDReconstructsAndIsOrthonormal() {
        let rows = randomRows(4, 9, seed: 3).map { $0.map(Double.init) }
        let svd = OneSidedJacobiSVD(rows: rows)
        let v = svd.rightSingularVectors
        for i in 0..<4 {
            for j in 0..<4 { XCTAssertEqual(dot(v[i], v[j]), i == j ? 1 : 0, accuracy: 1e-12) }
        }
        XCTAssertEqual(svd.singularValues, svd.singularValues.sorted(by: >))
        // X = Σ_k (X v_k) v_kᵀ, and ‖X v_k‖ = σ_k.
        for row in rows {
            let coefficients = v.map { dot(row, $0) }
            for j in 0..<9 {
                XCTAssertEqual(row[j], zip(coefficients, v).reduce(0) { $0 + $1.0 * $1.1[j] }, accuracy: 1e-12)
            }
        }
        for (k, vector) in v.enumerated() {
            let norm = rows.map { dot($0, vector) }.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertEqual(norm, svd.singularValues[k], accuracy: 1e-12)
        }
    }

    func testThresholdDropsDependentRows() throws {
        // Three rows spanning two directions: the third is a sum of the first two.
        var rows = randomRows(2, 6, seed: 5)
        rows.append(zip(rows[0], rows[1]).map { $0 + $1 })
        let projection = try DECORProjection(undesiredRows: rows)
        XCTAssertEqual(projection.rank, 2)
    }

    func testProjectionRemovesTheSpanAndKeepsTheRest() throws {
        let d = 8
        let undesired = randomRows(3, d, seed: 7)
        for alpha: Float in [1, 0.4] {
            let projection = try DECORProjection(undesiredRows: undesired, strength: alpha)
            let x = Support.tensor([1, 5, d], seed: 11)
            let projected = try projection.apply(x)
            let xs = x.values.map(Double.init), ps = projected.values.map(Double.init)
            for row in 0..<5 {
                let original = Array(xs[(row * d)..<((row + 1) * d)]), after = Array(ps[(row * d)..<((row + 1) * d)])
                // X′Ṽ = (1 − α) X Ṽ.
                for vector in projection.basis {
                    XCTAssertEqual(dot(after, vector), Double(1 - alpha) * dot(original, vector), accuracy: 1e-5)
                }
                // The part orthogonal to Ṽ is untouched.
                var orthogonal = original
                for vector in projection.basis {
                    let c = dot(original, vector)
                    for j in 0..<d { orthogonal[j] -= c * vector[j] }
                }
                let residual = after.enumerated().map { j, value in
                    value - projection.basis.reduce(0.0) { $0 + dot(after, $1) * $1[j] }
                }
                for j in 0..<d { XCTAssertEqual(residual[j], orthogonal[j], accuracy: 1e-5) }
            }
        }
        // A vector orthogonal to every undesired row stays exactly where it is (up to Float rounding).
        let projection = try DECORProjection(undesiredRows: [[1, 0, 0, 0], [0, 1, 0, 0]])
        let untouched = try projection.apply(Tensor(shape: [1, 4], values: [0, 0, 3, -2]))
        XCTAssertEqual(untouched.values, [0, 0, 3, -2])
        XCTAssertEqual(try projection.apply(Tensor(shape: [1, 4], values: [5, -1, 3, -2])).values, [0, 0, 3, -2])
    }

    func testZeroStrengthIsTheIdentity() throws {
        let projection = try DECORProjection(undesiredRows: randomRows(2, 6, seed: 9), strength: 0)
        let x = Support.tensor([2, 3, 6], seed: 13)
        XCTAssertEqual(try projection.apply(x).values, x.values)
        XCTAssertThrowsError(try DECORProjection(undesiredRows: randomRows(2, 6, seed: 9), strength: 1.5))
        XCTAssertThrowsError(try projection.apply(Support.tensor([1, 3, 5], seed: 1)))
    }

    func testWordsEncodeWithoutBeginEndOrPaddingRows() throws {
        let pipeline = try Support.pipeline()
        let words = "red"
        let rows = try DECORProjection.tokenRows(of: words, pipeline: pipeline)
        let tokens = pipeline.tokenizer.encode(words).count - 2
        XCTAssertEqual(rows.count, tokens)
        let states = try pipeline.encodePrompt(words)
        let d = states.shape[2]
        XCTAssertEqual(rows[0], Array(states.values[d..<(2 * d)]))
        // Words outside the vocabulary still encode (byte-level pieces) and give a projection.
        let unknown = try DECORProjection(removing: "zqxjvk, ñandú", pipeline: pipeline)
        XCTAssertGreaterThan(unknown.rank, 0)
        XCTAssertEqual(unknown.phrases, ["zqxjvk", "ñandú"])
        XCTAssertThrowsError(try DECORProjection(removing: " , ", pipeline: pipeline))
    }

    func testPipelineHookChangesOnlyProjectedRenders() throws {
        let pipeline = try Support.pipeline()
        let plain = try pipeline.generate(prompt: "a red star", frames: 1, steps: 2, seed: 4).latents.values
        try DECORSetting.install(DECORSetting(words: "red", strength: 0), on: pipeline)
        XCTAssertEqual(try pipeline.generate(prompt: "a red star", frames: 1, steps: 2, seed: 4).latents.values, plain)
        try DECORSetting.install(DECORSetting(words: "red"), on: pipeline)
        XCTAssertNotEqual(try pipeline.generate(prompt: "a red star", frames: 1, steps: 2, seed: 4).latents.values, plain)
        try DECORSetting.install(nil, on: pipeline)
        XCTAssertEqual(try pipeline.generate(prompt: "a red star", frames: 1, steps: 2, seed: 4).latents.values, plain)
    }

    func testComposeEncodesOnlyConditionalPromptsThroughTheProjection() throws {
        let pipeline = try Support.pipeline()
        let adapters = ConceptAdapters(pipeline: pipeline)
        let plain = try adapters.encodePrompt("a red star", adapter: nil)
        try DECORSetting.install(DECORSetting(words: "red"), on: pipeline)
        let projection = try DECORProjection(removing: "red", pipeline: pipeline)
        XCTAssertEqual(try adapters.encodeConditional("a red star", adapter: nil).values, try projection.apply(plain).values)
        XCTAssertEqual(try adapters.encodePrompt("a red star", adapter: nil).values, plain.values)
    }

    func testDecorTrainProjectsTheCaptionsAndResumesWithIt() throws {
        let images = (0..<2).map { index in
            MotionTrainingClip(name: "img\(index).png", caption: "a photo of <cat> red cat",
                               latents: Support.tensor([1, 4, 1, 10, 10], seed: 40 + UInt64(index)),
                               flippedLatents: Support.tensor([1, 4, 1, 10, 10], seed: 50 + UInt64(index)))
        }
        var folders: [String] = []
        defer { for folder in folders { try? FileManager.default.removeItem(atPath: folder) } }
        func firstLoss(_ decor: DECORSetting?) throws -> (Float, SubjectLoRATraining) {
            let folder = Support.temporaryFolder("decor-train")
            folders.append(folder)
            let pipeline = try Support.pipeline()
            let config = SubjectLoRAConfig(rank: 2, maxTrainSteps: 1, validationSteps: 0, decor: decor)
            let training = try SubjectLoRATraining(newRunIn: folder, pipeline: pipeline, config: config, images: images, token: "<cat>",
                                                   className: "cat", baseModel: Support.identity(pipeline))
            var random = RandomGenerator(seed: 1)
            return (try training.loss(step: 0, random: &random).item, training)
        }
        let (plain, _) = try firstLoss(nil)
        let (previewsOnly, _) = try firstLoss(DECORSetting(words: "red"))
        let (projected, training) = try firstLoss(DECORSetting(words: "red", appliesToTraining: true))
        XCTAssertEqual(plain, previewsOnly)
        XCTAssertNotEqual(plain, projected)
        let resumed = try SubjectLoRATraining(resumingIn: training.folder, pipeline: Support.pipeline(),
                                              baseModel: Support.identity(Support.pipeline()))
        XCTAssertEqual(resumed.config.decor, DECORSetting(words: "red", appliesToTraining: true))
    }
}
