/// What the shape classifier sees of an object: its silhouette in a square window around it,
/// resampled to a 16×16 grid of coverage values, plus its fill ratio and aspect ratio. The window
/// follows the object's bounding box, so size and position do not matter, only the outline.
public enum ShapeFeatures {
    public static let gridSide = 16
    public static let count = gridSide * gridSide + 2
    /// Samples per grid cell along each axis.
    static let samplesPerCell = 4

    public static func features(of object: DetectedObject, side: Int) -> [Float] {
        let width = object.maxX - object.minX + 1, height = object.maxY - object.minY + 1
        var inside = [Bool](repeating: false, count: width * height)
        for index in object.pixels {
            inside[(index / side - object.minY) * width + (index % side - object.minX)] = true
        }
        let window = Float(Swift.max(width, height))
        let originX = Float(object.minX) + Float(width) / 2 - window / 2
        let originY = Float(object.minY) + Float(height) / 2 - window / 2
        let n = gridSide * samplesPerCell
        var result = [Float](repeating: 0, count: count)
        let weight = 1 / Float(samplesPerCell * samplesPerCell)
        for sy in 0..<n {
            let py = Int((originY + (Float(sy) + 0.5) / Float(n) * window).rounded(.down)) - object.minY
            guard py >= 0, py < height else { continue }
            for sx in 0..<n {
                let px = Int((originX + (Float(sx) + 0.5) / Float(n) * window).rounded(.down)) - object.minX
                guard px >= 0, px < width, inside[py * width + px] else { continue }
                result[(sy / samplesPerCell) * gridSide + sx / samplesPerCell] += weight
            }
        }
        result[gridSide * gridSide] = Float(object.area) / Float(width * height)
        result[gridSide * gridSide + 1] = log(Float(width) / Float(height))
        return result
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
