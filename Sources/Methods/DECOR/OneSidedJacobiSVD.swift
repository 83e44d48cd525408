import Foundation

/// The right singular vectors and singular values of a small matrix by one-sided (Hestenes) Jacobi
/// rotations in Double: LAPACK's `dgesvj` idea without LAPACK.
///
/// For X (n × d, n rows = tokens) the rotations act on the n columns of Xᵀ (each of length d) until
/// every pair is orthogonal; the rotated columns are then Ṽ·Σ, so each column's norm is a singular
/// value and the normalised column its right singular vector. Work is O(n²·d) per sweep, small because
/// n (the undesired words' tokens) is small, and exact to rounding: no normal equations (XᵀX) are
/// formed, so small singular values keep their relative accuracy.
public struct OneSidedJacobiSVD: Sendable {
    /// Singular values, largest first.
    public let singularValues: [Double]
    /// `rightSingularVectors[i]` (length d) belongs to `singularValues[i]`; zero where the value is 0.
    public let rightSingularVectors: [[Double]]

    /// Decomposes the n × d matrix given by its rows (all of length d).
    public init(rows: [[Double]], maxSweeps: Int = 60) {
        var columns = rows  // the columns of Xᵀ are the rows of X
        let n = columns.count
        let tolerance = 1e-15
        for _ in 0..<maxSweeps {
            var rotated = false
            for p in 0..<n {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for (a, b) in zip(columns[p], columns[q]) {
                        alpha += a * a
                        beta += b * b
                        gamma += a * b
                    }
                    guard gamma != 0, abs(gamma) > tolerance * (alpha * beta).squareRoot() else { continue }
                    rotated = true
                    // The rotation that zeroes the (p, q) entry of the 2 × 2 Gram block (Golub & Van Loan 8.6.3).
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for index in columns[p].indices {
                        let a = columns[p][index], b = columns[q][index]
                        columns[p][index] = c * a - s * b
                        columns[q][index] = s * a + c * b
                    }
                }
            }
            if !rotated { break }
        }
        let norms = columns.map { column in column.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        let order = norms.indices.sorted { norms[$0] > norms[$1] }
        singularValues = order.map { norms[$0] }
        rightSingularVectors = order.map { index in
            let norm = norms[index]
            return norm > 0 ? columns[index].map { $0 / norm } : columns[index].map { _ in 0 }
        }
    }

    /// The right singular vectors whose singular value exceeds `relativeThreshold` times the largest.
    public func vectors(aboveRelativeThreshold relativeThreshold: Double) -> [[Double]] {
        guard let largest = singularValues.first, largest > 0 else { return [] }
        return zip(singularValues, rightSingularVectors).filter { $0.0 > relativeThreshold * largest }.map(\.1)
    }
}
