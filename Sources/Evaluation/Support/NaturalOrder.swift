/// Orders names the way people count: "frame_2.png" before "frame_10.png". Names are compared as
/// runs of digits (by numeric value, any length) and runs of other characters (by code point);
/// equal values with different zero padding fall back to the plain comparison, so the order is total.
public enum NaturalOrder {
    public static func less(_ left: String, _ right: String) -> Bool {
        let leftRuns = runs(left), rightRuns = runs(right)
        for (a, b) in zip(leftRuns, rightRuns) where a != b {
            switch (a, b) {
            case let (.digits(x), .digits(y)):
                let xValue = x.drop(while: { $0 == "0" }), yValue = y.drop(while: { $0 == "0" })
                if xValue.count != yValue.count { return xValue.count < yValue.count }
                if xValue != yValue { return xValue.lexicographicallyPrecedes(yValue) }
            case let (.text(x), .text(y)):
                return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
            case (.digits, .text):
                return true
            case (.text, .digits):
                return false
            }
        }
        if leftRuns.count != rightRuns.count { return leftRuns.count < rightRuns.count }
        return left.unicodeScalars.lexicographicallyPrecedes(right.unicodeScalars)
    }

    private enum Run: Equatable {
        case digits(Substring)
        case text(Substring)
    }

    private static func runs(_ name: String) -> [Run] {
        var runs: [Run] = []
        var start = name.startIndex
        while start < name.endIndex {
            let isDigit = name[start].isASCIIDigit
            var end = name.index(after: start)
            while end < name.endIndex && name[end].isASCIIDigit == isDigit { end = name.index(after: end) }
            runs.append(isDigit ? .digits(name[start..<end]) : .text(name[start..<end]))
            start = end
        }
        return runs
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
