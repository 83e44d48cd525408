/// Reads an object's size word from its extent.
///
/// Each shape fills its unit disc differently (a square's side is 1.6 radii, a circle's 2), so the
/// extent-to-radius ratio of every shape is measured once on clean renders through the same
/// segmentation, and a reading divides by it. Sizes are told apart on a log scale: the boundaries
/// lie halfway between the radii of neighbouring sizes.
public enum SizeProbe {
    /// Extent in pixels divided by (2 × radius × side), per shape, measured on clean renders.
    static let extentRatio: [ObjectShape: Float] = {
        var ratios: [ObjectShape: Float] = [:]
        let renderer = Renderer()
        for shape in ObjectShape.allCases {
            var sum: Float = 0, count: Float = 0
            for size in ObjectSize.allCases {
                for offset: Float in [0, 0.013, 0.027] {
                    let object = SceneObject(kind: .shape(shape), colour: .red, size: size, position: [0.5 + offset, 0.5 - offset])
                    let pixels = renderer.render(SceneSpec(background: Background(kind: .plain, colour: .blue), objects: [object]))[0]
                    guard let frame = try? ProbeFrame(side: renderer.side, pixels: pixels),
                          let found = FrameSegmentation(frame).objects.first else { continue }
                    sum += Float(found.extent) / (2 * size.radius * Float(renderer.side)); count += 1
                }
            }
            ratios[shape] = count > 0 ? sum / count : 1
        }
        return ratios
    }()

    /// Estimated radius (canvas units) of an object of a known shape.
    public static func radius(of object: DetectedObject, shape: ObjectShape, side: Int) -> Float {
        Float(object.extent) / (2 * Float(side) * extentRatio[shape]!)
    }

    /// The size word nearest to a radius on a log scale.
    public static func size(forRadius radius: Float) -> ObjectSize {
        let sizes = ObjectSize.allCases
        for (smaller, larger) in zip(sizes, sizes.dropFirst()) where radius < (smaller.radius * larger.radius).squareRoot() {
            return smaller
        }
        return sizes.last!
    }
}
