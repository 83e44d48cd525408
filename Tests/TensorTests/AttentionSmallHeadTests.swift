import XCTest
@testable import Tensor

/// The small-head attention kernel (head dims ≤ 16, vectorised over keys) against the blocked
/// (sgemm) kernel and finite differences, over head dims that exercise one and several channel
/// groups, key counts on and off the eight-lane blocks, and every mask form.
final class AttentionSmallHeadTests: XCTestCase {
    private func plain(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        let t = GradCheck.tensor(shape, seed: seed, scale: scale)
        t.requiresGrad = false
        return t
    }

    private func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        guard a.shape == b.shape else { return }
        var worst: Float = 0
        for i in 0..<a.count {
            XCTAssertTrue(a.data[i].isFinite, "\(what): element \(i) is \(a.data[i])", file: file, line: line)
            worst = max(worst, abs(a.data[i] - b.data[i]) / max(1, abs(b.data[i])))
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst relative difference \(worst)", file: file, line: line)
    }

    /// Output and the gradients of Σ output ∘ W with respect to the inputs that require them.
    private func run(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: Tensor?, scale: Float?,
                     kernel: Tensor.AttentionKernel, needs: [Bool] = [true, true, true]) throws -> (Tensor, [Tensor?]) {
        let inputs = [q, k, v]
        for (input, need) in zip(inputs, needs) { input.grad = nil; input.requiresGrad = need }
        let output = try Tensor.attention(query: q, key: k, value: v, scale: scale, mask: mask, kernel: kernel)
        let weights = plain(output.shape, seed: 91)
        try (output * weights).sum().backward()
        let grads = inputs.map { $0.grad }
        for input in inputs { input.grad = nil; input.requiresGrad = false }
        return (output.detached(), grads)
    }

    func testSmallHeadMatchesBlockedKernel() throws {
        // (batches, queries, keys, depth, value depth)
        let cases: [(Int, Int, Int, Int, Int)] = [
            (3, 5, 7, 4, 4), (2, 9, 8, 2, 2), (2, 6, 9, 1, 3), (4, 17, 77, 4, 4), (2, 11, 16, 2, 2),
            (2, 7, 33, 5, 9), (2, 5, 20, 16, 16), (1, 40, 256, 4, 4), (3, 4, 1, 3, 2), (2, 3, 12, 12, 7),
        ]
        for (b, lq, lk, d, dv) in cases {
            let q = plain([b, lq, d], seed: 10, scale: 2), k = plain([b, lk, d], seed: 11, scale: 2)
            let v = plain([b, lk, dv], seed: 12)
            let partial = plain([b, lq, lk], seed: 13, scale: 3)
            for i in stride(from: 2, to: partial.count, by: 3) { partial.data[i] = -.infinity }
            let masks: [Tensor?] = [nil, partial, plain([lk], seed: 14), plain([b, 1, lk], seed: 15), plain([lq, 1], seed: 16)]
            for (index, mask) in masks.enumerated() {
                for scale: Float? in [nil, 0.8] {
                    let what = "b \(b) lq \(lq) lk \(lk) d \(d) dv \(dv) mask \(index) scale \(String(describing: scale))"
                    let (expected, expectedGrads) = try run(q, k, v, mask: mask, scale: scale, kernel: .blocked)
                    let (output, grads) = try run(q, k, v, mask: mask, scale: scale, kernel: .smallHead)
                    assertClose(output, expected, tolerance: 1e-5, "\(what) output")
                    for (name, (grad, reference)) in zip(["dq", "dk", "dv"], zip(grads, expectedGrads)) {
                        assertClose(grad!, reference!, tolerance: 2e-5, "\(what) \(name)")
                    }
                }
            }
        }
    }

    func testAutomaticForwardTakesSmallHeadOnlyForTinyHeadsOverFewKeys() throws {
        // Same results either way; this pins the automatic choice to agree with the explicit kernel bit for bit.
        for (depth, keys, expected) in [(2, 12, Tensor.AttentionKernel.smallHead), (4, 16, .smallHead), (4, 17, .blocked), (12, 12, .blocked)] {
            let q = plain([4, 10, depth], seed: 20), k = plain([4, keys, depth], seed: 21), v = plain([4, keys, depth], seed: 22)
            let automatic = try Tensor.attention(query: q, key: k, value: v)
            let explicit = try Tensor.attention(query: q, key: k, value: v, scale: nil, mask: nil, kernel: expected)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: automatic.data, count: automatic.count)),
                           Array(UnsafeBufferPointer(start: explicit.data, count: explicit.count)), "head dim \(depth), \(keys) keys")
        }
    }

    /// Head dimension 12: the automatic choice runs the blocked forward, then the small-head backward
    /// up to `smallHeadBackwardMaxKeys` keys and the blocked backward beyond, on the forward's output
    /// and logsumexp: the gradients are, bit for bit, those kernels' (and within rounding of the
    /// small-head kernel's forward and backward).
    func testAutomaticBackwardTakesSmallHeadUpToSixtyFourKeys() throws {
        for keys in [Tensor.smallHeadBackwardMaxKeys + 13, 40] {
            let q = plain([3, 9, 12], seed: 40), k = plain([3, keys, 12], seed: 41), v = plain([3, keys, 12], seed: 42)
            let (output, grads) = try run(q, k, v, mask: nil, scale: nil, kernel: .automatic)
            let (blockedOutput, _) = try run(q, k, v, mask: nil, scale: nil, kernel: .blocked)
            let (_, smallGrads) = try run(q, k, v, mask: nil, scale: nil, kernel: .smallHead)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: output.data, count: output.count)),
                           Array(UnsafeBufferPointer(start: blockedOutput.data, count: blockedOutput.count)))
            // The backward by hand on the blocked forward's output and logsumexp.
            let geometry = try AttentionGeometry(query: q, key: k, value: v, mask: nil, op: "attention")
            let out = Tensor(uninitialized: [3, 9, 12]), lse = Tensor(uninitialized: [3, 9])
            let scale = 1 / Float(12).squareRoot()
            Tensor.blockedAttentionForward(geometry, scale, q.data, k.data, v.data, out.data, lse.data)
            let weights = plain(out.shape, seed: 91)
            let dq = Tensor(uninitialized: q.shape), dk = Tensor(uninitialized: k.shape), dv = Tensor(uninitialized: v.shape)
            let gradients = AttentionGradients(dq: dq.data, dk: dk.data, dv: dv.data)
            if keys > Tensor.smallHeadBackwardMaxKeys {
                Tensor.blockedAttentionBackward(geometry, scale, q.data, k.data, v.data, out.data, lse.data, weights.data, gradients)
            } else {
                Tensor.smallHeadAttentionBackward(geometry, scale, q.data, k.data, v.data, out.data, lse.data, weights.data, gradients)
            }
            for (name, (grad, expected)) in zip(["dq", "dk", "dv"], zip(grads, [dq, dk, dv])) {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: grad!.data, count: grad!.count)),
                               Array(UnsafeBufferPointer(start: expected.data, count: expected.count)), "\(keys) keys: \(name)")
            }
            for (name, (grad, reference)) in zip(["dq", "dk", "dv"], zip(grads, smallGrads)) {
                assertClose(grad!, reference!, tolerance: 2e-5, "\(keys) keys: \(name) against the small-head kernel's")
            }
        }
    }

    func testFullyMaskedRowsMatchBlockedKernel() throws {
        let q = plain([2, 3, 4], seed: 30), k = plain([2, 10, 4], seed: 31), v = plain([2, 10, 4], seed: 32)
        let mask = Tensor(zeros: [2, 3, 10])
        for j in 0..<10 { mask.data[10 + j] = -.infinity }   // batch 0, query 1: every key masked
        let (expected, expectedGrads) = try run(q, k, v, mask: mask, scale: nil, kernel: .blocked)
        let (output, grads) = try run(q, k, v, mask: mask, scale: nil, kernel: .smallHead)
        assertClose(output, expected, tolerance: 1e-5, "output")
        for (grad, reference) in zip(grads, expectedGrads) { assertClose(grad!, reference!, tolerance: 1e-5, "gradient") }
    }

    func testPartialGradients() throws {
        let q = plain([2, 6, 3], seed: 40), k = plain([2, 11, 3], seed: 41), v = plain([2, 11, 5], seed: 42)
        for needs in [[true, false, false], [false, true, false], [false, false, true], [true, false, true]] {
            let (_, expected) = try run(q, k, v, mask: nil, scale: nil, kernel: .blocked, needs: needs)
            let (_, grads) = try run(q, k, v, mask: nil, scale: nil, kernel: .smallHead, needs: needs)
            for (index, need) in needs.enumerated() {
                if need {
                    assertClose(grads[index]!, expected[index]!, tolerance: 1e-5, "needs \(needs) input \(index)")
                } else {
                    XCTAssertNil(grads[index], "needs \(needs) input \(index)")
                }
            }
        }
    }

    func testSmallHeadGradients() throws {
        let mask = plain([2, 1, 9], seed: 53)
        for (d, dv) in [(2, 2), (4, 3), (6, 5)] {
            let q = GradCheck.tensor([2, 3, d], seed: 50), k = GradCheck.tensor([2, 9, d], seed: 51)
            let v = GradCheck.tensor([2, 9, dv], seed: 52)
            try GradCheck.check([q, k, v]) {
                try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: nil, mask: mask, kernel: .smallHead)
            }
            try GradCheck.check([q, k, v]) {
                try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: 0.6, mask: nil, kernel: .smallHead)
            }
        }
    }
}
