import Tensor
import XCTest

extension XCTestCase {
    /// max |actual − expected| ≤ tolerance · max |expected|, with matching shapes and a reference
    /// that is not trivially small.
    func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        guard actual.shape == expected.shape else { return }
        let scale = expected.values.map(abs).max() ?? 0
        let error = zip(actual.values, expected.values).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertGreaterThan(scale, 0.1, "\(what): reference is trivially small", file: file, line: line)
        XCTAssertLessThanOrEqual(error, tolerance * scale, "\(what): max abs error \(error), max |expected| \(scale)", file: file, line: line)
    }
}
