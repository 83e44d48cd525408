import Foundation

/// The Philox4x32-10 block function (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3";
/// Random123's `philox4x32`, the generator behind PyTorch's CUDA `philox_cuda_state`).
///
/// A pure function of a 128-bit counter and a 64-bit key: any block can be computed on its own,
/// which is what makes draws independent of how the work is split across threads.
public enum Philox4x32 {
    public static let multiplier0: UInt32 = 0xD251_1F53
    public static let multiplier1: UInt32 = 0xCD9E_8D57
    public static let weyl0: UInt32 = 0x9E37_79B9
    public static let weyl1: UInt32 = 0xBB67_AE85

    public typealias Block = (UInt32, UInt32, UInt32, UInt32)

    /// Ten rounds of Philox4x32 on `counter` under `key` (the key is bumped by the Weyl constants between rounds).
    @inline(__always)
    public static func block(counter: Block, key: (UInt32, UInt32)) -> Block {
        var c = counter
        var k0 = key.0, k1 = key.1
        for round in 0..<10 {
            if round > 0 { k0 &+= weyl0; k1 &+= weyl1 }
            let product0 = UInt64(multiplier0) &* UInt64(c.0)
            let product1 = UInt64(multiplier1) &* UInt64(c.2)
            c = (UInt32(truncatingIfNeeded: product1 >> 32) ^ c.1 ^ k0,
                 UInt32(truncatingIfNeeded: product1),
                 UInt32(truncatingIfNeeded: product0 >> 32) ^ c.3 ^ k1,
                 UInt32(truncatingIfNeeded: product0))
        }
        return c
    }
}

/// A seeded, counter-based random generator: every draw in the engine comes from one of these.
///
/// Block `n` of a stream is `Philox4x32-10(counter: (n, stream), key: seed)`, four 32-bit words.
/// A draw of `count` values takes the blocks from `offset` on, value `i` reading block
/// `offset + i / 4` (word `i % 4`), and then advances `offset` by the blocks it used. So value `i`
/// depends only on (seed, stream, offset, i): tensors are filled in parallel by blocks of counters
/// and come out identical on any thread count. `derived(_:)` gives independent streams, one per batch
/// item, so an item renders the same whether it is drawn alone or inside a batch (diffusers'
/// per-item `torch.Generator` list).
public struct RandomGenerator: Sendable, Equatable {
    public let seed: UInt64
    /// Which stream of this seed: 0 for the root, a hash of (parent stream, index) for derived ones.
    public let stream: UInt64
    /// The next unused counter (in 128-bit blocks of four words).
    public var offset: UInt64

    public init(seed: UInt64, stream: UInt64 = 0, offset: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.offset = offset
    }

    @inline(__always)
    var key: (UInt32, UInt32) { (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)) }

    /// The four words of block `position` of this stream (does not advance).
    @inline(__always)
    public func block(at position: UInt64) -> Philox4x32.Block {
        Philox4x32.block(counter: (UInt32(truncatingIfNeeded: position), UInt32(truncatingIfNeeded: position >> 32),
                                   UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
                         key: key)
    }

    /// An independent generator for item `index` (a batch item, a worker, a prompt line). It depends on
    /// (seed, stream, index) only, not on how much this generator has drawn, and starts at offset 0.
    public func derived(_ index: UInt64) -> RandomGenerator {
        // The stream id is one Philox block of (index, parent stream) under a key kept apart from the
        // seed's own draws, so nested derivations never land back on a parent's stream by construction.
        let words = Philox4x32.block(
            counter: (UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32),
                      UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
            key: (key.0 ^ 0x5851_F42D, key.1 ^ 0x4C95_7F2D))
        return RandomGenerator(seed: seed, stream: UInt64(words.0) | UInt64(words.1) << 32 | 1, offset: 0)
    }

    // MARK: Word to number conversions

    /// The top 24 bits as a float in [0, 1): every value is exactly representable.
    @inline(__always)
    static func unitInterval(_ word: UInt32) -> Float { Float(word >> 8) * 0x1p-24 }

    /// As `unitInterval` but in (0, 1], safe to take the logarithm of.
    @inline(__always)
    static func unitIntervalExcludingZero(_ word: UInt32) -> Float { Float((word >> 8) + 1) * 0x1p-24 }

    // MARK: Block-parallel filling

    /// Fills `count` floats, four per block from `offset` on, with `kernel(words) -> four values`,
    /// and advances `offset` by the blocks used. Blocks are split over threads by counter ranges.
    @inline(__always)
    mutating func fill(_ output: UnsafeMutablePointer<Float>, count: Int,
                       _ kernel: (Philox4x32.Block) -> SIMD4<Float>) {
        guard count > 0 else { return }
        let blocks = (count + 3) / 4
        let generator = self
        let start = offset
        Parallel.forRanges(count: blocks, grain: 4096) { range in
            for b in range {
                let values = kernel(generator.block(at: start &+ UInt64(b)))
                let base = b * 4
                if base + 4 <= count {
                    UnsafeMutableRawPointer(output + base).storeBytes(of: values, as: SIMD4<Float>.self)
                } else {
                    for lane in 0..<(count - base) { output[base + lane] = values[lane] }
                }
            }
        }
        offset = start &+ UInt64(blocks)
    }

    // MARK: Draws

    /// Uniform values in [low, high) (torch.rand scaled).
    public mutating func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let result = Tensor(uninitialized: shape)
        let width = high - low
        fill(result.data, count: result.count) { w in
            SIMD4(RandomGenerator.unitInterval(w.0), RandomGenerator.unitInterval(w.1),
                  RandomGenerator.unitInterval(w.2), RandomGenerator.unitInterval(w.3)) * width + low
        }
        return result
    }

    /// Normal values (torch.randn scaled): Box–Muller on word pairs, both outputs used, so each block
    /// gives four values.
    public mutating func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let result = Tensor(uninitialized: shape)
        fill(result.data, count: result.count) { w in
            let (a0, a1) = RandomGenerator.boxMuller(w.0, w.1)
            let (b0, b1) = RandomGenerator.boxMuller(w.2, w.3)
            return SIMD4(a0, a1, b0, b1) * std + mean
        }
        return result
    }

    @inline(__always)
    static func boxMuller(_ first: UInt32, _ second: UInt32) -> (Float, Float) {
        let radius = (-2 * Foundation.log(unitIntervalExcludingZero(first))).squareRoot()
        let angle = 2 * Float.pi * unitInterval(second)
        return (radius * Foundation.cos(angle), radius * Foundation.sin(angle))
    }

    /// `count` uniform values in [0, 1).
    public mutating func uniformValues(count: Int) -> [Float] {
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialised in
            fill(buffer.baseAddress!, count: count) { w in
                SIMD4(RandomGenerator.unitInterval(w.0), RandomGenerator.unitInterval(w.1),
                      RandomGenerator.unitInterval(w.2), RandomGenerator.unitInterval(w.3))
            }
            initialised = count
        }
    }

    /// 1 with probability `probability`, else 0 (torch.bernoulli of a constant).
    public mutating func bernoulli(_ shape: [Int], probability: Float) -> Tensor {
        let result = Tensor(uninitialized: shape)
        fill(result.data, count: result.count) { w in
            let u = SIMD4(RandomGenerator.unitInterval(w.0), RandomGenerator.unitInterval(w.1),
                          RandomGenerator.unitInterval(w.2), RandomGenerator.unitInterval(w.3))
            return SIMD4<Float>(repeating: 0).replacing(with: 1, where: u .< probability)
        }
        return result
    }

    /// 64-bit words, two per value (two per block pair of words), advancing `offset` by the blocks used.
    mutating func words64(count: Int) -> [UInt64] {
        guard count > 0 else { return [] }
        let blocks = (count + 1) / 2
        var result = [UInt64](repeating: 0, count: count)
        for b in 0..<blocks {
            let w = block(at: offset &+ UInt64(b))
            result[2 * b] = UInt64(w.0) | UInt64(w.1) << 32
            if 2 * b + 1 < count { result[2 * b + 1] = UInt64(w.2) | UInt64(w.3) << 32 }
        }
        offset &+= UInt64(blocks)
        return result
    }

    /// `count` integers uniform in 0..<bound (timesteps, crop positions). Each takes 64 random bits and
    /// maps them by a multiply-high, so the bias is below bound / 2^64 and every value uses a fixed
    /// number of counters (no rejection loop that would shift later draws).
    public mutating func integers(below bound: Int, count: Int) throws -> [Int] {
        guard bound > 0 else {
            throw TensorError.invalidArgument(op: "RandomGenerator.integers", reason: "bound \(bound) must be positive")
        }
        guard count >= 0 else {
            throw TensorError.invalidArgument(op: "RandomGenerator.integers", reason: "count \(count) must not be negative")
        }
        return words64(count: count).map { Int($0.multipliedFullWidth(by: UInt64(bound)).high) }
    }

    /// One integer uniform in 0..<bound.
    public mutating func integer(below bound: Int) throws -> Int {
        try integers(below: bound, count: 1)[0]
    }

    /// A uniformly random permutation of `items` (Fisher–Yates, one 64-bit draw per swap).
    public mutating func shuffled<T>(_ items: [T]) -> [T] {
        var result = items
        guard result.count > 1 else { return result }
        let draws = words64(count: result.count - 1)
        for (k, i) in stride(from: result.count - 1, to: 0, by: -1).enumerated() {
            let j = Int(draws[k].multipliedFullWidth(by: UInt64(i + 1)).high)
            result.swapAt(i, j)
        }
        return result
    }
}
