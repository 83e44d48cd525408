import XCTest
@testable import Tensor

final class NormAttentionTests: XCTestCase {
    // MARK: Helpers

    private func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-4, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        guard a.shape == b.shape else { return }
        var worst: Float = 0
        for i in 0..<a.count {
            worst = max(worst, abs(a.data[i] - b.data[i]) / max(1, abs(b.data[i])))
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst relative difference \(worst)", file: file, line: line)
    }

    private func plain(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        let t = GradCheck.tensor(shape, seed: seed, scale: scale, offset: offset)
        t.requiresGrad = false
        return t
    }

    /// softmax(q kᵀ · scale + mask) v from the plain ops.
    private func unfusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float, mask: Tensor?) throws -> Tensor {
        var scores = try q.matmul(k, transposeB: true) * scale
        if let mask { scores = try scores + mask }
        return try scores.softmax().matmul(v)
    }

    /// Gradients of Σ f(inputs) ∘ W with respect to each input.
    private func gradients(_ inputs: [Tensor], _ f: ([Tensor]) throws -> Tensor) throws -> (Tensor, [Tensor]) {
        for input in inputs { input.grad = nil; input.requiresGrad = true }
        let output = try f(inputs)
        let weights = plain(output.shape, seed: 77)
        try (output * weights).sum().backward()
        let grads = inputs.map { $0.grad! }
        for input in inputs { input.grad = nil; input.requiresGrad = false }
        return (output.detached(), grads)
    }

    // MARK: Layer norm

    func testLayerNormKnownValues() throws {
        let x = try Tensor(shape: [2, 4], values: [1, 2, 3, 4, 10, 10, 10, 14])
        let y = try Tensor.layerNorm(x, weight: nil, bias: nil)
        // Row 1: mean 2.5, biased variance 1.25 → (x − 2.5)/√(1.25 + 1e-5).
        let r = 1 / (1.25 + 1e-5 as Float).squareRoot()
        let expected: [Float] = [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r]
        for i in 0..<4 { XCTAssertEqual(y.data[i], expected[i], accuracy: 1e-5) }
        // Row 2: mean 11, variance 3 → [−1, −1, −1, 3]/√3.
        let r2 = 1 / (3 + 1e-5 as Float).squareRoot()
        for (i, value) in [-r2, -r2, -r2, 3 * r2].enumerated() { XCTAssertEqual(y.data[4 + i], value, accuracy: 1e-5) }

        let w = try Tensor(shape: [4], values: [2, 1, 1, 0.5]), b = try Tensor(shape: [4], values: [0, 1, 0, -1])
        let affine = try Tensor.layerNorm(x, weight: w, bias: b)
        for i in 0..<8 {
            XCTAssertEqual(affine.data[i], y.data[i] * w.data[i % 4] + b.data[i % 4], accuracy: 1e-5)
        }
    }

    func testLayerNormLargeOffsetIsStable() throws {
        // A large common offset must not destroy the variance (two-pass statistics).
        let values = (0..<1000).map { 10_000 + Float($0 % 7) - 3 }
        let x = try Tensor(shape: [1, 1000], values: values)
        let y = try Tensor.layerNorm(x, weight: nil, bias: nil)
        let mean = values.map(Double.init).reduce(0, +) / 1000
        let variance = values.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / 1000
        for i in 0..<1000 {
            let expected = (Double(values[i]) - mean) / (variance + 1e-5).squareRoot()
            XCTAssertEqual(Double(y.data[i]), expected, accuracy: 1e-3)
        }
    }

    func testLayerNormGradients() throws {
        for shape in [[3, 5], [2, 2, 12]] {
            let width = shape.last!
            let x = GradCheck.tensor(shape, seed: 1, scale: 2)
            let w = GradCheck.tensor([width], seed: 2, scale: 0.5, offset: 1)
            let b = GradCheck.tensor([width], seed: 3)
            try GradCheck.check([x, w, b]) { try Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2]) }
            try GradCheck.check([x]) { try Tensor.layerNorm($0[0], weight: nil, bias: nil) }
        }
        // Only the affine parameters need a gradient: the dx pass is skipped.
        let x = plain([4, 9], seed: 4), w = GradCheck.tensor([9], seed: 5), b = GradCheck.tensor([9], seed: 6)
        try GradCheck.check([x, w, b]) { try Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2]) }
    }

    // MARK: Group norm

    /// torch.nn.functional.group_norm written as loops in Double.
    private func naiveGroupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Double = 1e-5) -> [Float] {
        let n = x.shape[0], c = x.shape[1], spatial = x.count / (n * c), cg = c / groups
        var y = [Float](repeating: 0, count: x.count)
        for sample in 0..<n {
            for group in 0..<groups {
                var sum = 0.0
                for ch in (group * cg)..<((group + 1) * cg) {
                    for s in 0..<spatial { sum += Double(x.data[(sample * c + ch) * spatial + s]) }
                }
                let mean = sum / Double(cg * spatial)
                var squares = 0.0
                for ch in (group * cg)..<((group + 1) * cg) {
                    for s in 0..<spatial { let d = Double(x.data[(sample * c + ch) * spatial + s]) - mean; squares += d * d }
                }
                let rstd = 1 / (squares / Double(cg * spatial) + epsilon).squareRoot()
                for ch in (group * cg)..<((group + 1) * cg) {
                    for s in 0..<spatial {
                        let i = (sample * c + ch) * spatial + s
                        var v = (Double(x.data[i]) - mean) * rstd
                        if let weight { v *= Double(weight.data[ch]) }
                        if let bias { v += Double(bias.data[ch]) }
                        y[i] = Float(v)
                    }
                }
            }
        }
        return y
    }

    func testGroupNormMatchesNaiveLoop() throws {
        for (shape, groups) in [([2, 6, 3, 2], 3), ([3, 8, 5], 2), ([2, 4, 2, 3, 3], 4), ([2, 32, 4, 4], 8)] {
            let x = plain(shape, seed: 10, scale: 3, offset: 1)
            let w = plain([shape[1]], seed: 11, offset: 1), b = plain([shape[1]], seed: 12)
            let y = try Tensor.groupNorm(x, groups: groups, weight: w, bias: b)
            let expected = naiveGroupNorm(x, groups: groups, weight: w, bias: b)
            for i in 0..<x.count { XCTAssertEqual(y.data[i], expected[i], accuracy: 1e-4, "shape \(shape) element \(i)") }
            let bare = try Tensor.groupNorm(x, groups: groups, weight: nil, bias: nil)
            let expectedBare = naiveGroupNorm(x, groups: groups, weight: nil, bias: nil)
            for i in 0..<x.count { XCTAssertEqual(bare.data[i], expectedBare[i], accuracy: 1e-4) }
        }
    }

    func testGroupNormGradients() throws {
        let x = GradCheck.tensor([2, 6, 3, 2], seed: 20, scale: 2)
        let w = GradCheck.tensor([6], seed: 21, scale: 0.5, offset: 1), b = GradCheck.tensor([6], seed: 22)
        try GradCheck.check([x, w, b]) { try Tensor.groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2]) }
        try GradCheck.check([x]) { try Tensor.groupNorm($0[0], groups: 2, weight: nil, bias: nil) }
        // Spatial run of 9 (a SIMD lane block plus a tail), one channel per group.
        let x2 = GradCheck.tensor([2, 4, 9], seed: 23)
        let w2 = GradCheck.tensor([4], seed: 24, offset: 1), b2 = GradCheck.tensor([4], seed: 25)
        try GradCheck.check([x2, w2, b2]) { try Tensor.groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2]) }
        // Parameters only.
        let x3 = plain([2, 4, 9], seed: 26)
        try GradCheck.check([x3, w2, b2]) { try Tensor.groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2]) }
    }

    func testNormErrorsNameOpAndShapes() {
        let x = Tensor(zeros: [2, 6, 4])
        XCTAssertThrowsError(try Tensor.groupNorm(x, groups: 4, weight: nil, bias: nil)) { error in
            XCTAssertTrue("\(error)".contains("groupNorm") && "\(error)".contains("[2, 6, 4]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.groupNorm(x, groups: 3, weight: Tensor(zeros: [4]), bias: nil)) { error in
            XCTAssertTrue("\(error)".contains("groupNorm") && "\(error)".contains("[4]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.groupNorm(Tensor(zeros: [6]), groups: 3, weight: nil, bias: nil)) { error in
            XCTAssertTrue("\(error)".contains("groupNorm") && "\(error)".contains("[6]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.layerNorm(x, weight: nil, bias: Tensor(zeros: [6]))) { error in
            XCTAssertTrue("\(error)".contains("layerNorm") && "\(error)".contains("[2, 6, 4]") && "\(error)".contains("[6]"), "\(error)")
        }
    }

    // MARK: Softmax

    func testSoftmaxMatchesNaiveAndSumsToOne() throws {
        for width in [1, 5, 8, 21] {
            let x = plain([3, width], seed: 30, scale: 4)
            let y = try x.softmax()
            let logY = try x.logSoftmax()
            for row in 0..<3 {
                let values = (0..<width).map { Double(x.data[row * width + $0]) }
                let m = values.max()!
                let total = values.map { Foundation.exp($0 - m) }.reduce(0, +)
                var sum: Float = 0
                for j in 0..<width {
                    let expected = Foundation.exp(values[j] - m) / total
                    XCTAssertEqual(Double(y.data[row * width + j]), expected, accuracy: 1e-6)
                    XCTAssertEqual(Double(logY.data[row * width + j]), values[j] - m - Foundation.log(total), accuracy: 1e-5)
                    sum += y.data[row * width + j]
                }
                XCTAssertEqual(sum, 1, accuracy: 1e-5)
            }
        }
        // Large logits do not overflow.
        let big = try Tensor(shape: [1, 3], values: [1000, 1001, 999])
        let p = try big.softmax()
        XCTAssertTrue(p.values.allSatisfy { $0.isFinite })
        XCTAssertEqual(p.data[1], 1 / (1 + Float(Foundation.exp(-1.0)) + Float(Foundation.exp(-2.0))), accuracy: 1e-6)
    }

    func testSoftmaxOtherAxesAndGradients() throws {
        let x = GradCheck.tensor([2, 3, 4], seed: 31, scale: 2)
        let along1 = try x.softmax(axis: 1)
        for a in 0..<2 {
            for c in 0..<4 {
                var total: Float = 0
                for b in 0..<3 { total += along1.data[(a * 3 + b) * 4 + c] }
                XCTAssertEqual(total, 1, accuracy: 1e-5)
            }
        }
        try GradCheck.check([x]) { try $0[0].softmax() }
        try GradCheck.check([x]) { try $0[0].softmax(axis: 0) }
        try GradCheck.check([x]) { try $0[0].logSoftmax() }
        try GradCheck.check([x]) { try $0[0].logSoftmax(axis: 1) }
        let wide = GradCheck.tensor([2, 19], seed: 32, scale: 3)
        try GradCheck.check([wide]) { try $0[0].softmax() }
        try GradCheck.check([wide]) { try $0[0].logSoftmax() }
        XCTAssertThrowsError(try x.softmax(axis: 3)) { XCTAssertTrue("\($0)".contains("softmax")) }
    }

    // MARK: Attention

    /// Masks of every supported broadcast form for [B, Lq, Lk], with some entries masked out.
    private func masks(batches: Int, queries: Int, keys: Int) throws -> [Tensor?] {
        func mask(_ shape: [Int], seed: UInt64) throws -> Tensor {
            let t = plain(shape, seed: seed, scale: 2)
            // Mask out some keys, never a whole row (torch gives NaN there).
            if shape.last! > 1 { for i in stride(from: 3, to: t.count, by: 5) { t.data[i] = -Float.infinity } }
            return t
        }
        return [nil,
                try mask([queries, keys], seed: 40),
                try mask([batches, queries, keys], seed: 41),
                try mask([batches, 1, keys], seed: 42),
                try mask([keys], seed: 43),
                try mask([1, queries, keys], seed: 44),
                try mask([batches, queries, 1], seed: 45)]
    }

    func testAttentionMatchesUnfusedComposition() throws {
        let cases: [(b: Int, lq: Int, lk: Int, d: Int, dv: Int)] = [
            (3, 5, 7, 4, 6), (2, 8, 8, 32, 32), (2, 200, 150, 16, 8), (4, 9, 3, 10, 5),
        ]
        for c in cases {
            let q = plain([c.b, c.lq, c.d], seed: 50), k = plain([c.b, c.lk, c.d], seed: 51), v = plain([c.b, c.lk, c.dv], seed: 52)
            let scale = 1 / Float(c.d).squareRoot()
            for (index, mask) in try masks(batches: c.b, queries: c.lq, keys: c.lk).enumerated() {
                let (expected, expectedGrads) = try gradients([q, k, v]) {
                    try unfusedAttention($0[0], $0[1], $0[2], scale: scale, mask: mask)
                }
                for kernel in [Tensor.AttentionKernel.automatic, .blocked, .direct] {
                    let what = "case \(c) mask \(index) kernel \(kernel)"
                    let (output, grads) = try gradients([q, k, v]) {
                        try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: nil, mask: mask, kernel: kernel)
                    }
                    assertClose(output, expected, tolerance: 2e-5, "\(what) output")
                    for (name, (grad, reference)) in zip(["dq", "dk", "dv"], zip(grads, expectedGrads)) {
                        assertClose(grad, reference, tolerance: 1e-4, "\(what) \(name)")
                    }
                }
            }
        }
    }

    func testAttentionDirectAndBlockedKernelsAgree() throws {
        // Temporal attention shape: many short sequences.
        let q = plain([64, 8, 40], seed: 60), k = plain([64, 8, 40], seed: 61), v = plain([64, 8, 40], seed: 62)
        let mask = plain([64, 1, 8], seed: 63)
        let (direct, directGrads) = try gradients([q, k, v]) {
            try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: 0.3, mask: mask, kernel: .direct)
        }
        let (blocked, blockedGrads) = try gradients([q, k, v]) {
            try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: 0.3, mask: mask, kernel: .blocked)
        }
        assertClose(direct, blocked, tolerance: 1e-5, "output")
        for (a, b) in zip(directGrads, blockedGrads) { assertClose(a, b, tolerance: 1e-5, "gradient") }
    }

    func testAttentionGradients() throws {
        let q = GradCheck.tensor([2, 3, 5], seed: 70), k = GradCheck.tensor([2, 4, 5], seed: 71)
        let v = GradCheck.tensor([2, 4, 3], seed: 72)
        let mask = plain([2, 1, 4], seed: 73)
        for kernel in [Tensor.AttentionKernel.blocked, .direct] {
            try GradCheck.check([q, k, v]) {
                try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: nil, mask: mask, kernel: kernel)
            }
            try GradCheck.check([q, k, v]) {
                try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: 0.7, mask: nil, kernel: kernel)
            }
        }
        // Gradient with respect to some inputs only.
        let constantQ = plain([2, 3, 5], seed: 74)
        try GradCheck.check([constantQ, k, v]) { try Tensor.attention(query: $0[0], key: $0[1], value: $0[2]) }
        let constantV = plain([2, 4, 3], seed: 75)
        try GradCheck.check([q, k, constantV]) { try Tensor.attention(query: $0[0], key: $0[1], value: $0[2]) }
    }

    /// multiHeadAttention reads each head's columns in place; it must give exactly what folding the
    /// heads into the batch, attention and laying them back out gives, for every kernel.
    func testMultiHeadAttentionReadsHeadsInPlace() throws {
        func fold(_ x: Tensor, _ heads: Int) throws -> Tensor {
            try x.reshaped([x.shape[0], x.shape[1], heads, x.shape[2] / heads]).permuted([0, 2, 1, 3])
                .reshaped([x.shape[0] * heads, x.shape[1], x.shape[2] / heads])
        }
        func unfold(_ x: Tensor, _ heads: Int) throws -> Tensor {
            try x.reshaped([x.shape[0] / heads, heads, x.shape[1], x.shape[2]]).permuted([0, 2, 1, 3])
                .reshaped([x.shape[0] / heads, x.shape[1], heads * x.shape[2]])
        }
        let cases: [(b: Int, lq: Int, lk: Int, d: Int, dv: Int, kernel: Tensor.AttentionKernel)] = [
            (2, 5, 7, 4, 6, .smallHead), (2, 9, 37, 8, 8, .automatic), (2, 6, 8, 20, 12, .direct),
            (3, 40, 30, 24, 24, .blocked), (2, 17, 5, 2, 2, .automatic),
        ]
        try Tensor.withoutGrad {
            for c in cases {
                for heads in [1, 2, 3] {
                    let q = plain([c.b, c.lq, heads * c.d], seed: 150), k = plain([c.b, c.lk, heads * c.d], seed: 151)
                    let v = plain([c.b, c.lk, heads * c.dv], seed: 152)
                    for mask in [nil, plain([c.b * heads, 1, c.lk], seed: 153)] {
                        let expected = try unfold(Tensor.attention(query: fold(q, heads), key: fold(k, heads), value: fold(v, heads),
                                                                   scale: 0.4, mask: mask, kernel: c.kernel), heads)
                        let output = try Tensor.multiHeadAttention(query: q, key: k, value: v, heads: heads, scale: 0.4,
                                                                   mask: mask, kernel: c.kernel)
                        XCTAssertEqual(output.shape, expected.shape)
                        XCTAssertEqual(output.values, expected.values, "case \(c) heads \(heads) mask \(mask != nil)")
                    }
                }
            }
        }
        // While gradients are recorded it is the composition itself, gradients included.
        let q = GradCheck.tensor([2, 3, 6], seed: 160), k = GradCheck.tensor([2, 4, 6], seed: 161)
        let v = GradCheck.tensor([2, 4, 4], seed: 162)
        try GradCheck.check([q, k, v]) { try Tensor.multiHeadAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2) }
        XCTAssertThrowsError(try Tensor.multiHeadAttention(query: q, key: k, value: v, heads: 4)) { error in
            XCTAssertTrue("\(error)".contains("heads"), "\(error)")
        }
    }

    func testAttentionProbabilities() throws {
        let q = plain([3, 6, 4], seed: 80), k = plain([3, 5, 4], seed: 81)
        for mask in try masks(batches: 3, queries: 6, keys: 5) {
            var scores = try q.matmul(k, transposeB: true) * 0.5
            if let mask { scores = try scores + mask }
            let expected = try scores.softmax()
            let p = try Tensor.attentionProbabilities(query: q, key: k, scale: 0.5, mask: mask)
            assertClose(p, expected, tolerance: 1e-6, "probabilities")
        }
        let gq = GradCheck.tensor([2, 3, 4], seed: 82), gk = GradCheck.tensor([2, 5, 4], seed: 83)
        let mask = plain([3, 5], seed: 84)
        try GradCheck.check([gq, gk]) { try Tensor.attentionProbabilities(query: $0[0], key: $0[1], mask: mask) }
        try GradCheck.check([gq, gk]) { try Tensor.attentionProbabilities(query: $0[0], key: $0[1], scale: 1.3) }
    }

    func testAttentionErrorsNameOpAndShapes() {
        let q = Tensor(zeros: [2, 3, 4]), k = Tensor(zeros: [2, 5, 4]), v = Tensor(zeros: [2, 5, 6])
        XCTAssertThrowsError(try Tensor.attention(query: q, key: Tensor(zeros: [2, 5, 3]), value: v)) { error in
            XCTAssertTrue("\(error)".contains("attention") && "\(error)".contains("[2, 3, 4]") && "\(error)".contains("[2, 5, 3]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.attention(query: q, key: k, value: Tensor(zeros: [2, 4, 6]))) { error in
            XCTAssertTrue("\(error)".contains("attention") && "\(error)".contains("[2, 4, 6]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.attention(query: Tensor(zeros: [3, 4]), key: k, value: v)) { error in
            XCTAssertTrue("\(error)".contains("attention") && "\(error)".contains("[3, 4]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.attention(query: q, key: k, value: v, mask: Tensor(zeros: [3, 4]))) { error in
            XCTAssertTrue("\(error)".contains("attention") && "\(error)".contains("mask") && "\(error)".contains("[3, 4]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.attentionProbabilities(query: q, key: Tensor(zeros: [3, 5, 4]))) { error in
            XCTAssertTrue("\(error)".contains("attentionProbabilities") && "\(error)".contains("[3, 5, 4]"), "\(error)")
        }
    }
}
