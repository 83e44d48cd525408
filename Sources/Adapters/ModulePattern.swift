/// Selects modules by their dotted path (their diffusers key without `.weight`), the way PEFT's
/// `target_modules` does, in one of two forms:
///
/// - A glob over path components, written as the path itself: a component that is exactly `*`
///   stands for one or more whole components, and `*` inside a component (`to_*`) for any run of
///   characters within that one component; everything else must match literally. So
///   `*.attentions.*.transformer_blocks.*.attn1.to_q` selects the spatial self-attention queries of
///   every down, mid and up block, and `transformer_in.*` everything below `transformer_in`.
/// - A regular expression that must match the whole path, written `re:<expression>`
///   (PEFT's string-valued `target_modules`, which `re.fullmatch`es).
public struct ModulePattern: Equatable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The pattern as written (with `re:` for regular expressions).
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public var description: String { text }

    static let regexPrefix = "re:"

    /// Throws `AdapterError.invalidPattern` for an empty pattern, an empty path component or a
    /// regular expression that does not compile.
    public func validate() throws {
        if text.hasPrefix(Self.regexPrefix) {
            do { _ = try Regex(String(text.dropFirst(Self.regexPrefix.count))) } catch {
                throw AdapterError.invalidPattern(text, reason: "not a regular expression: \(error)")
            }
        } else {
            guard !text.isEmpty else { throw AdapterError.invalidPattern(text, reason: "empty pattern") }
            guard !text.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
                throw AdapterError.invalidPattern(text, reason: "empty path component (two dots in a row, or a leading or trailing dot)")
            }
        }
    }

    /// A matcher for many paths; throws when the pattern is invalid.
    public func matcher() throws -> (String) -> Bool {
        try validate()
        if text.hasPrefix(Self.regexPrefix) {
            let regex = try Regex(String(text.dropFirst(Self.regexPrefix.count)))
            return { path in (try? regex.wholeMatch(in: path)) != nil }
        }
        let components = text.split(separator: ".").map(String.init)
        return { path in
            Self.globMatch(components[...], path.split(separator: ".").map(String.init)[...])
        }
    }

    /// Whether `path` matches (false for an invalid pattern).
    public func matches(_ path: String) -> Bool {
        (try? matcher())?(path) ?? false
    }

    private static func globMatch(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head == "*" {
            // One or more whole components, shortest first.
            guard !path.isEmpty else { return false }
            for taken in 1...path.count where globMatch(pattern.dropFirst(), path.dropFirst(taken)) {
                return true
            }
            return false
        }
        guard let component = path.first, componentMatch(Array(head.utf8)[...], Array(component.utf8)[...]) else { return false }
        return globMatch(pattern.dropFirst(), path.dropFirst())
    }

    /// `*` inside a component: any run of characters (fnmatch within one component).
    private static func componentMatch(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let head = pattern.first else { return text.isEmpty }
        if head == UInt8(ascii: "*") {
            for skip in 0...text.count where componentMatch(pattern.dropFirst(), text.dropFirst(skip)) {
                return true
            }
            return false
        }
        guard let first = text.first, first == head else { return false }
        return componentMatch(pattern.dropFirst(), text.dropFirst())
    }
}

extension ModulePattern {
    /// MotionDirector's spatial LoRA targets (METHODS.md): in every spatial transformer, the
    /// self-attention projections and the feed-forward, not cross-attention.
    public static let motionDirectorSpatial: [ModulePattern] = [
        "*.attentions.*.transformer_blocks.*.attn1.to_q",
        "*.attentions.*.transformer_blocks.*.attn1.to_k",
        "*.attentions.*.transformer_blocks.*.attn1.to_v",
        "*.attentions.*.transformer_blocks.*.attn1.to_out.0",
        "*.attentions.*.transformer_blocks.*.ff.net.0.proj",
        "*.attentions.*.transformer_blocks.*.ff.net.2",
    ]

    /// MotionDirector's temporal LoRA targets (METHODS.md): in every temporal transformer
    /// (UNet3D's `…temp_attentions.N` and `transformer_in`; AnimateDiff's motion modules
    /// `…motion_modules.N`, middle block included), both attentions (self-attention over frames)
    /// and the feed-forward. Each layout matches its own half of the list.
    public static let motionDirectorTemporal: [ModulePattern] = [
        "*.motion_modules.*.transformer_blocks.*.attn1.*",
        "*.motion_modules.*.transformer_blocks.*.attn2.*",
        "*.motion_modules.*.transformer_blocks.*.ff.*",
        "*.temp_attentions.*.transformer_blocks.*.attn1.*",
        "*.temp_attentions.*.transformer_blocks.*.attn2.*",
        "*.temp_attentions.*.transformer_blocks.*.ff.*",
        "transformer_in.transformer_blocks.*.attn1.*",
        "transformer_in.transformer_blocks.*.attn2.*",
        "transformer_in.transformer_blocks.*.ff.*",
    ]

    /// Every attention projection, spatial and temporal, self and cross (Break-for-Make's PLP targets).
    public static let attentionProjections: [ModulePattern] = [
        "*.to_q", "*.to_k", "*.to_v", "*.to_out.0",
    ]
}
