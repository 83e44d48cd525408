/// F(4×4, 3×3)'s transforms (Lavin & Gray's interpolation points 0, ±1, ±2 and ∞):
///
///     Bᵀ = | 4   0  −5   0  1  0 |    G = |  1/4     0     0  |    Aᵀ = | 1  1   1  1   1  0 |
///          | 0  −4  −4   1  1  0 |        | −1/6  −1/6  −1/6 |         | 0  1  −1  2  −2  0 |
///          | 0   4  −4  −1  1  0 |        | −1/6   1/6  −1/6 |         | 0  1   1  4   4  0 |
///          | 0  −2  −1   2  1  0 |        | 1/24  1/12   1/6 |         | 0  1  −1  8  −8  1 |
///          | 0   2  −1  −2  1  0 |        | 1/24 −1/12   1/6 |
///          | 0   4   0  −5  0  1 |        |   0     0     1  |
///
/// Each runs over all of an image's tiles at once, as F(2×2, 3×3)'s do: a padded input row is split
/// into its columns of each residue mod 4, so tile column tx's six inputs are `r0[tx], r1[tx],
/// r2[tx], r3[tx], r0[tx + 1], r1[tx + 1]`, and the horizontal transforms go to one block per
/// residue of the row, so a tile row's six rows are those blocks at ty and, for the last two, ty + 1.
extension Winograd {
    /// Bᵀ d for six values (one column or row of a tile).
    @inline(__always)
    private static func inputRow(_ d0: Float, _ d1: Float, _ d2: Float, _ d3: Float, _ d4: Float, _ d5: Float)
        -> (Float, Float, Float, Float, Float, Float) {
        let a = d4 - 4 * d2, b = d3 - 4 * d1
        let c = d4 - d2, e = 2 * (d3 - d1)
        return (4 * d0 - 5 * d2 + d4, a + b, a - b, c + e, c - e, 4 * d1 - 5 * d3 + d5)
    }

    /// G applied to three values (one column or row of a kernel), for one kernel or eight side by side.
    @inline(__always)
    private static func kernelRow<V: WinogradLanes>(_ x0: V, _ x1: V, _ x2: V) -> (V, V, V, V, V, V) {
        let sixth = V(repeating: 1 / 6), twelfth = V(repeating: 1 / 12), twentyFourth = V(repeating: 1 / 24)
        let even = x0 + x2
        let r1 = V(repeating: 0) - sixth * (even + x1), r2 = V(repeating: 0) - sixth * (even - x1)
        let outer = twentyFourth * x0 + sixth * x2, middle = twelfth * x1
        return (V(repeating: 0.25) * x0, r1, r2, outer + middle, outer - middle, x2)
    }

    /// `G g Gᵀ` of the kernels whose nine taps are `stride` apart at `k`, written to the 36 planes
    /// of `u` (`plane` apart): one kernel (V = Float) or eight side by side (V = SIMD8).
    @inline(__always)
    static func transformKernelsF4<V: WinogradLanes>(_ k: UnsafePointer<Float>, stride: Int,
                                                    into u: UnsafeMutablePointer<Float>, plane: Int,
                                                    load: (UnsafePointer<Float>) -> V,
                                                    store: (V, UnsafeMutablePointer<Float>) -> Void) {
        // Columns of G g: G applied to each kernel column q.
        let c0 = kernelRow(load(k), load(k + 3 * stride), load(k + 6 * stride))
        let c1 = kernelRow(load(k + stride), load(k + 4 * stride), load(k + 7 * stride))
        let c2 = kernelRow(load(k + 2 * stride), load(k + 5 * stride), load(k + 8 * stride))
        @inline(__always) func write(_ i: Int, _ x0: V, _ x1: V, _ x2: V) {
            let r = kernelRow(x0, x1, x2), t = u + 6 * i * plane
            store(r.0, t); store(r.1, t + plane); store(r.2, t + 2 * plane)
            store(r.3, t + 3 * plane); store(r.4, t + 4 * plane); store(r.5, t + 5 * plane)
        }
        write(0, c0.0, c1.0, c2.0)
        write(1, c0.1, c1.1, c2.1)
        write(2, c0.2, c1.2, c2.2)
        write(3, c0.3, c1.3, c2.3)
        write(4, c0.4, c1.4, c2.4)
        write(5, c0.5, c1.5, c2.5)
    }

    /// F(4×4, 3×3)'s `transformInput`.
    func transformInputF4(_ input: UnsafePointer<Float>, images: Int, into v: UnsafeMutablePointer<Float>, ld: Int,
                          scratch: UnsafeMutablePointer<Float>, channelRange: Range<Int>?) {
        let (channels, height, width) = (g.channels, g.height, g.width)
        let (tw, th) = (tilesWide, tilesHigh)
        let tiles = th * tw
        // h[j][s]: a [th + 1, tw] block, the horizontal transform j of padded rows 4k + s (input
        // rows 4k + s − 1).
        let block = (th + 1) * tw
        @inline(__always) func h(_ j: Int, _ residue: Int) -> UnsafeMutablePointer<Float> { scratch + (4 * j + residue) * block }
        // The padded row's columns 4k + s, s = 0...3 (input column 4k + s − 1), k = 0...tw.
        let columns = scratch + 24 * block
        let runs = tw + 1
        let planeStride = channels * ld
        for n in 0..<images {
            for c in channelRange ?? 0..<channels {
                let source = input + (n * channels + c) * height * width
                for pr in 0..<(4 * th + 2) {
                    let y = pr - 1
                    let row = pr / 4, residue = pr % 4
                    guard y >= 0, y < height else {
                        for j in 0..<6 { (h(j, residue) + row * tw).update(repeating: 0, count: tw) }
                        continue
                    }
                    let line = source + y * width
                    for s in 0..<4 {
                        let target = columns + s * runs
                        for k in 0..<runs {
                            let x = 4 * k + s - 1
                            target[k] = x >= 0 && x < width ? line[x] : 0
                        }
                    }
                    let (r0, r1, r2, r3) = (columns, columns + runs, columns + 2 * runs, columns + 3 * runs)
                    let (h0, h1, h2) = (h(0, residue) + row * tw, h(1, residue) + row * tw, h(2, residue) + row * tw)
                    let (h3, h4, h5) = (h(3, residue) + row * tw, h(4, residue) + row * tw, h(5, residue) + row * tw)
                    for tx in 0..<tw {
                        let t = Self.inputRow(r0[tx], r1[tx], r2[tx], r3[tx], r0[tx + 1], r1[tx + 1])
                        h0[tx] = t.0; h1[tx] = t.1; h2[tx] = t.2; h3[tx] = t.3; h4[tx] = t.4; h5[tx] = t.5
                    }
                }
                let target = v + c * ld + n * tiles
                for j in 0..<6 {
                    // Rows 0...5 of every tile: residues 0...3 at ty, then residues 0 and 1 at ty + 1.
                    let (d0, d1, d2, d3) = (UnsafePointer(h(j, 0)), UnsafePointer(h(j, 1)), UnsafePointer(h(j, 2)), UnsafePointer(h(j, 3)))
                    let (d4, d5) = (d0 + tw, d1 + tw)
                    let (o0, o1, o2) = (target + j * planeStride, target + (6 + j) * planeStride, target + (12 + j) * planeStride)
                    let (o3, o4, o5) = (target + (18 + j) * planeStride, target + (24 + j) * planeStride, target + (30 + j) * planeStride)
                    for t in 0..<tiles {
                        let r = Self.inputRow(d0[t], d1[t], d2[t], d3[t], d4[t], d5[t])
                        o0[t] = r.0; o1[t] = r.1; o2[t] = r.2; o3[t] = r.3; o4[t] = r.4; o5[t] = r.5
                    }
                }
            }
        }
    }

    /// Aᵀ m for six values.
    @inline(__always)
    private static func outputRow(_ m0: Float, _ m1: Float, _ m2: Float, _ m3: Float, _ m4: Float, _ m5: Float)
        -> (Float, Float, Float, Float) {
        let sum12 = m1 + m2, difference12 = m1 - m2, sum34 = m3 + m4, difference34 = m3 - m4
        return (m0 + sum12 + sum34, difference12 + 2 * difference34, sum12 + 4 * sum34, difference12 + 8 * difference34 + m5)
    }

    /// F(4×4, 3×3)'s `transformOutput`.
    func transformOutputF4(_ m: UnsafePointer<Float>, ld: Int, images: Int, bias: UnsafePointer<Float>?,
                           into output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                           channelRange: Range<Int>?) {
        let (outChannels, outHeight, outWidth) = (g.outChannels, g.outHeight, g.outWidth)
        let (tw, th) = (tilesWide, tilesHigh)
        let tiles = th * tw
        let planeStride = outChannels * ld
        // s[a][l]: Σ_k Aᵀ[a][k] m[k][l] over every tile; then y[b] for one output row a at a time.
        let s = scratch, y = scratch + 24 * tiles
        for n in 0..<images {
            for o in channelRange ?? 0..<outChannels {
                let b = bias?[o] ?? 0
                let source = m + o * ld + n * tiles
                let target = output + (n * outChannels + o) * outHeight * outWidth
                for l in 0..<6 {
                    let (m0, m1, m2) = (source + l * planeStride, source + (6 + l) * planeStride, source + (12 + l) * planeStride)
                    let (m3, m4, m5) = (source + (18 + l) * planeStride, source + (24 + l) * planeStride, source + (30 + l) * planeStride)
                    let (s0, s1, s2, s3) = (s + l * tiles, s + (6 + l) * tiles, s + (12 + l) * tiles, s + (18 + l) * tiles)
                    for t in 0..<tiles {
                        let r = Self.outputRow(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
                        s0[t] = r.0; s1[t] = r.1; s2[t] = r.2; s3[t] = r.3
                    }
                }
                for a in 0..<4 {
                    let sa = s + 6 * a * tiles
                    let (s0, s1, s2, s3, s4, s5) = (sa, sa + tiles, sa + 2 * tiles, sa + 3 * tiles, sa + 4 * tiles, sa + 5 * tiles)
                    let (y0, y1, y2, y3) = (y, y + tiles, y + 2 * tiles, y + 3 * tiles)
                    for t in 0..<tiles {
                        let r = Self.outputRow(s0[t], s1[t], s2[t], s3[t], s4[t], s5[t])
                        y0[t] = r.0 + b; y1[t] = r.1 + b; y2[t] = r.2 + b; y3[t] = r.3 + b
                    }
                    for ty in 0..<th {
                        let row = 4 * ty + a
                        guard row < outHeight else { break }
                        let out = target + row * outWidth
                        let full = outWidth / 4
                        for tx in 0..<full {
                            let t = ty * tw + tx
                            out[4 * tx] = y0[t]; out[4 * tx + 1] = y1[t]; out[4 * tx + 2] = y2[t]; out[4 * tx + 3] = y3[t]
                        }
                        if full < tw {
                            // The last tile's first one to three columns.
                            let t = ty * tw + full, first = 4 * full
                            out[first] = y0[t]
                            if first + 1 < outWidth { out[first + 1] = y1[t] }
                            if first + 2 < outWidth { out[first + 2] = y2[t] }
                        }
                    }
                }
            }
        }
    }
}
