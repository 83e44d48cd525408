import Foundation

/// Numbers as messages and `inspect` write them: whole values without a fraction ("8", not "8.0").
public enum NumberText {
    public static func format(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return "\(value)"
    }
}
