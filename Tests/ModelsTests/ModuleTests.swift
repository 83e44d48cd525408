import XCTest
@testable import Models
@testable import Tensor

final class ModuleTests: XCTestCase {
    final class Block: Module {
        let proj: Linear
        let out: Linear
        override init() {
            proj = Linear(4, 3)
            out = Linear(3, 2, bias: false)
            super.init()
            child("proj", proj)
            child("out", out)
        }
    }

    func testParameterPathsAreDiffusersKeys() {
        let root = Module()
        let blocks = root.child("blocks", Module())
        blocks.child("0", Block())
        blocks.child("1", Block())
        XCTAssertEqual(root.namedParameters().map(\.path), [
            "blocks.0.proj.weight", "blocks.0.proj.bias", "blocks.0.out.weight",
            "blocks.1.proj.weight", "blocks.1.proj.bias", "blocks.1.out.weight",
        ])
        XCTAssertTrue(root.module(at: "blocks.1.out") is Linear)
        XCTAssertNil(root.module(at: "blocks.2"))
        XCTAssertEqual(root.parameterCount, 2 * (12 + 3 + 6))
    }

    func testLinearMatchesFormula() throws {
        let layer = Linear(2, 2)
        try layer.weight.assign(Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
        try layer.bias!.assign(Tensor(shape: [2], values: [0.5, -0.5]))
        let y = try layer(Tensor(shape: [1, 2], values: [1, 1]))
        XCTAssertEqual(y.values, [3.5, 6.5])
    }

    /// Inference runs a feed-forward block over many tokens in pieces; each row must come out as the
    /// whole block computes it, including the rows of the last, shorter piece.
    func testFeedForwardInPiecesMatchesTheWholeBlock() throws {
        var generator = RandomGenerator(seed: 3)
        let block = FeedForward(8)
        for (_, parameter) in block.namedParameters() { try parameter.assign(generator.normal(parameter.shape) * 0.3) }
        let rows = 2 * FeedForward.inferenceChunkRows + 37
        let x = generator.normal([1, rows, 8])
        let whole = try block(x, context: ForwardContext())
        XCTAssertTrue(GradMode.isEnabled, "the reference must take the whole-block path")
        let pieces = try Tensor.withoutGrad { try block(x, context: ForwardContext()) }
        XCTAssertEqual(pieces.shape, [1, rows, 8])
        var largest: Float = 0
        for (a, b) in zip(whole.values, pieces.values) { largest = max(largest, abs(a - b)) }
        XCTAssertLessThan(largest, 1e-5)
    }
}
