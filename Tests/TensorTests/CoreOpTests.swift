import XCTest
@testable import Tensor

final class CoreOpTests: XCTestCase {
    func testBroadcastingKnownValues() throws {
        let a = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = try Tensor(shape: [3], values: [10, 20, 30])
        XCTAssertEqual(try (a + b).values, [11, 22, 33, 14, 25, 36])
        let c = try Tensor(shape: [2, 1], values: [2, 3])
        XCTAssertEqual(try (a * c).values, [2, 4, 6, 12, 15, 18])
        XCTAssertEqual(try (c - b).shape, [2, 3])
        XCTAssertEqual(try (c - b).values, [-8, -18, -28, -7, -17, -27])
        XCTAssertThrowsError(try a + Tensor(zeros: [2])) { error in
            XCTAssertTrue("\(error)".contains("add"))
            XCTAssertTrue("\(error)".contains("[2, 3]") && "\(error)".contains("[2]"))
        }
    }

    func testBinaryGradientsWithBroadcasting() throws {
        let a = GradCheck.tensor([2, 3, 4], seed: 1)
        let b = GradCheck.tensor([3, 1], seed: 2, scale: 0.5, offset: 2)
        try GradCheck.check([a, b]) { try $0[0] + $0[1] }
        try GradCheck.check([a, b]) { try $0[0] - $0[1] }
        try GradCheck.check([a, b]) { try $0[0] * $0[1] }
        try GradCheck.check([a, b]) { try $0[0] / $0[1] }
    }

    func testUnaryGradients() throws {
        let x = GradCheck.tensor([3, 5], seed: 3)
        let positive = GradCheck.tensor([3, 5], seed: 4, scale: 0.4, offset: 1.5)
        try GradCheck.check([x]) { $0[0].exp() }
        try GradCheck.check([positive]) { $0[0].log() }
        try GradCheck.check([positive]) { $0[0].sqrt() }
        try GradCheck.check([positive]) { $0[0].pow(3) }
        try GradCheck.check([x]) { $0[0].pow(2) }
        try GradCheck.check([positive]) { $0[0].abs() }
        try GradCheck.check([x]) { $0[0].affine(scale: -2, shift: 3) }
    }

    func testVectorExpAccuracy() {
        for x: Float in stride(from: -80, through: 80, by: 0.37) {
            let expected = Foundation.exp(x)
            XCTAssertEqual(VectorMath.exp(x), expected, accuracy: expected * 3e-7)
        }
        for x: Float in stride(from: -4, through: 4, by: 0.01) {
            XCTAssertEqual(VectorMath.tanh(.init(repeating: x))[0], Foundation.tanh(x), accuracy: 1e-6)
        }
    }

    func testReductions() throws {
        let x = try Tensor(shape: [2, 3], values: [1, 5, 3, 4, 2, 6])
        XCTAssertEqual(try x.sum().item, 21)
        XCTAssertEqual(try x.sum(axes: [0]).values, [5, 7, 9])
        XCTAssertEqual(try x.sum(axes: [1], keepDims: true).shape, [2, 1])
        XCTAssertEqual(try x.mean(axes: [1]).values, [3, 4])
        XCTAssertEqual(try x.max(axes: [1]).values, [5, 6])
        XCTAssertEqual(try x.max(axes: [0]).values, [4, 5, 6])
        XCTAssertThrowsError(try x.sum(axes: [2]))
        let g = GradCheck.tensor([2, 3, 4], seed: 5)
        try GradCheck.check([g]) { try $0[0].sum(axes: [1]) }
        try GradCheck.check([g]) { try $0[0].sum(axes: [1, 2], keepDims: true) }
        try GradCheck.check([g]) { try $0[0].mean(axes: [0, 2]) }
        try GradCheck.check([g]) { try $0[0].max(axes: [1]) }
        try GradCheck.check([g]) { try $0[0].max(axes: [2]) }
    }

    func testShapeOps() throws {
        let x = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try x.transposed().values, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(try x.reshaped([3, -1]).shape, [3, 2])
        XCTAssertThrowsError(try x.reshaped([4, 2]))
        XCTAssertEqual(try x.slice(axis: 1, 1..<3).values, [2, 3, 5, 6])
        XCTAssertEqual(try Tensor.concat([x, x], axis: 1).values, [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
        XCTAssertEqual(try x.padded([(0, 0), (1, 0)]).values, [0, 1, 2, 3, 0, 4, 5, 6])
        XCTAssertEqual(try x.repeated([1, 2]).values, [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
        let parts = try x.split(sizes: [1, 2], axis: 1)
        XCTAssertEqual(parts[1].values, [2, 3, 5, 6])
        // A slice along the first axis is a view: it shares storage.
        XCTAssertTrue(try x.slice(rows: 1..<2).storage === x.storage)

        let a = GradCheck.tensor([2, 3, 4], seed: 6), b = GradCheck.tensor([2, 2, 4], seed: 7)
        try GradCheck.check([a]) { try $0[0].permuted([2, 0, 1]) }
        try GradCheck.check([a]) { try $0[0].transposed(0, 2) }
        try GradCheck.check([a, b]) { try Tensor.concat([$0[0], $0[1]], axis: 1) }
        try GradCheck.check([a]) { try $0[0].split(sizes: [1, 2], axis: 1)[1] }
        try GradCheck.check([a]) { try $0[0].slice(rows: 1..<2) }
        try GradCheck.check([a]) { try $0[0].padded([(1, 0), (0, 2)]) }
        try GradCheck.check([a]) { try $0[0].repeated([1, 2, 3]) }
        try GradCheck.check([a]) { try $0[0].reshaped([4, 6]) }
        try GradCheck.check([a]) { try $0[0].broadcast(to: [3, 2, 3, 4]) }
    }

    func testMatmulAndLinear() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        let b = try Tensor(shape: [2, 2], values: [5, 6, 7, 8])
        XCTAssertEqual(try a.matmul(b).values, [19, 22, 43, 50])
        XCTAssertEqual(try a.matmul(b, transposeA: true).values, [26, 30, 38, 44])
        XCTAssertEqual(try a.matmul(b, transposeB: true).values, [17, 23, 39, 53])
        XCTAssertThrowsError(try a.matmul(Tensor(zeros: [3, 2])))

        let x = GradCheck.tensor([2, 3, 4], seed: 8), y = GradCheck.tensor([2, 4, 5], seed: 9)
        let shared = GradCheck.tensor([4, 5], seed: 10), yt = GradCheck.tensor([2, 5, 4], seed: 11)
        let xt = GradCheck.tensor([2, 4, 3], seed: 12)
        try GradCheck.check([x, y]) { try $0[0].matmul($0[1]) }
        try GradCheck.check([x, shared]) { try $0[0].matmul($0[1]) }
        try GradCheck.check([x, yt]) { try $0[0].matmul($0[1], transposeB: true) }
        try GradCheck.check([xt, y]) { try $0[0].matmul($0[1], transposeA: true) }

        let w = GradCheck.tensor([5, 4], seed: 13), bias = GradCheck.tensor([5], seed: 14)
        try GradCheck.check([x, w, bias]) { try Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        try GradCheck.check([x, w]) { try Tensor.linear($0[0], weight: $0[1]) }
    }

    func testAutogradAccumulatesAndMasks() throws {
        let w = GradCheck.tensor([4], seed: 15)
        w.gradMask = try Tensor(shape: [4], values: [1, 0, 1, 0])
        for _ in 0..<2 { try (w * 3).sum().backward() }
        XCTAssertEqual(w.grad?.values, [6, 0, 6, 0])

        // Gradient with respect to an input through frozen weights (latent guidance).
        let latent = GradCheck.tensor([3], seed: 16)
        let frozen = try Tensor(shape: [3], values: [1, 2, 3])
        try (latent * frozen).sum().backward()
        XCTAssertEqual(latent.grad?.values, [1, 2, 3])
        XCTAssertNil(frozen.grad)

        // No graph without grad mode, and a consumed graph cannot run twice.
        let y = try Tensor.withoutGrad { try (latent * frozen).sum() }
        XCTAssertThrowsError(try y.backward())
        let z = try (latent * frozen).sum()
        try z.backward()
        XCTAssertThrowsError(try z.backward())
    }

    /// A graph that backward never consumes (a branch the loss does not reach, as in latent
    /// guidance, or a step abandoned by an error) is freed with its last tensor: no node holds its
    /// own output. Each op whose backward reads its output is checked.
    func testAnUnconsumedGraphIsFreed() throws {
        let x = GradCheck.tensor([2, 3, 4], seed: 31)
        let positive = GradCheck.tensor([2, 3, 4], seed: 32).affine(scale: 0, shift: 2)
        let ops: [(String, () throws -> Tensor)] = [
            ("div", { try x / positive }),
            ("exp", { x.exp() }),
            ("silu", { x.silu() }),
            ("softmax", { try x.softmax() }),
            ("attention", { try Tensor.attention(query: x, key: x, value: x) }),
        ]
        for (name, op) in ops {
            weak var released: Tensor?
            func make() throws {
                let output = try op()
                XCTAssertTrue(output.needsGrad, name)
                released = output
            }
            try make()
            XCTAssertNil(released, "\(name): its output outlived the last reference (a cycle through its gradient node)")
        }
    }

    func testLeafGradientsNeverShareABuffer() throws {
        // a + b hands one gradient buffer to both leaves; each must get its own.
        let a = GradCheck.tensor([3], seed: 21), b = GradCheck.tensor([3], seed: 22)
        let seed = try Tensor(shape: [3], values: [1, 2, 3])
        try (a + b).backward(gradient: seed)
        a.grad!.data[0] = 100
        XCTAssertEqual(b.grad?.values, [1, 2, 3])
        // The caller's seed is never kept as a gradient: later accumulation must not write into it.
        XCTAssertEqual(seed.values, [1, 2, 3])
        let c = GradCheck.tensor([3], seed: 23)
        try c.reshaped([3]).backward(gradient: seed)
        try c.reshaped([3]).backward(gradient: seed)
        XCTAssertEqual(c.grad?.values, [2, 4, 6])
        XCTAssertEqual(seed.values, [1, 2, 3])
        // Views of one gradient (concat's backward) reach two leaves: still two buffers.
        let d = GradCheck.tensor([2], seed: 24), e = GradCheck.tensor([2], seed: 25)
        try Tensor.concat([d, e], axis: 0).backward(gradient: try Tensor(shape: [4], values: [1, 2, 3, 4]))
        d.grad!.data[1] = -1
        XCTAssertEqual(e.grad?.values, [3, 4])
        // A fresh gradient handed out once becomes the leaf's gradient and accumulates as usual.
        let f = GradCheck.tensor([2], seed: 26)
        for _ in 0..<3 { try (f * 2).sum().backward() }
        XCTAssertEqual(f.grad?.values, [6, 6])
    }
}
