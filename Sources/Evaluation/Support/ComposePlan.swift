import Foundation
import Methods
import World

/// Everything `compose` decides before the model loads: which LoRA file is which concept, each
/// concept's prompt, words and box, all checked, so that bad input fails before any rendering and
/// nothing is written.
public struct ComposePlan {
    public enum Method: String, CaseIterable {
        case composer, clora, merge
    }

    public struct Concept {
        /// The name it goes by: the --lora NAME as written, or a file's stem.
        public var name: String
        public var choice: LoRAChoice
        public var token: String?
        public var className: String?
        /// LoRA-Composer's region prompt or CLoRA's prompt for this LoRA (empty when merging).
        public var prompt: String
        /// Words that name it in prompts: its token, its class word, its name.
        public var words: [String]
        public var box: ConceptBox?

        /// The names a --region or --concept-prompt may use for it.
        public var aliases: [String] {
            var names = [name, ((choice.path as NSString).lastPathComponent as NSString).deletingPathExtension]
            if let token { names += [token, LoRAFileFacts.bare(token)] }
            var seen: Set<String> = []
            return names.filter { !$0.isEmpty && seen.insert($0).inserted }
        }
    }

    public var method: Method
    public var prompt: String
    public var concepts: [Concept]

    /// `NAME=x0,y0,x1,y1` → (NAME, box); the box is not yet checked.
    public static func parseRegion(_ text: String) throws -> (name: String, box: ConceptBox) {
        guard let equals = text.firstIndex(of: "=") else {
            throw ComposeInputError("--region '\(text)': expected NAME=x0,y0,x1,y1 (fractions of the image, e.g. cat=0,0.1,0.5,0.9)")
        }
        let name = String(text[..<equals]).trimmingCharacters(in: .whitespaces)
        let numbers = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
            .map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !name.isEmpty, numbers.count == 4, numbers.allSatisfy({ $0 != nil }) else {
            throw ComposeInputError("--region '\(text)': expected NAME=x0,y0,x1,y1 with four numbers (fractions of the image, e.g. cat=0,0.1,0.5,0.9)")
        }
        return (name, ConceptBox(x0: numbers[0]!, y0: numbers[1]!, x1: numbers[2]!, y1: numbers[3]!))
    }

    /// `NAME=prompt text` → (NAME, prompt).
    public static func parseConceptPrompt(_ text: String) throws -> (name: String, prompt: String) {
        guard let equals = text.firstIndex(of: "=") else {
            throw ComposeInputError("--concept-prompt '\(text)': expected NAME=\"prompt\" (e.g. cat=\"a <cat> cat sitting\")")
        }
        let name = String(text[..<equals]).trimmingCharacters(in: .whitespaces)
        let prompt = String(text[text.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !prompt.isEmpty else {
            throw ComposeInputError("--concept-prompt '\(text)': expected NAME=\"prompt\" with a name and a prompt")
        }
        return (name, prompt)
    }

    /// Resolves names to concepts and fills in the defaults (see `Compose`'s help).
    /// `prompt` nil: `defaultPrompt` of the concepts, in --lora order (the side-by-side layout's order).
    public init(method: Method, prompt: String?, choices: [LoRAChoice], regions: [(name: String, box: ConceptBox)],
         conceptPrompts: [(name: String, prompt: String)]) throws {
        guard !choices.isEmpty else { throw ComposeInputError("give at least one --lora") }
        self.method = method
        self.prompt = prompt ?? ""
        var concepts = choices.map { choice -> Concept in
            let facts = LoRAFileFacts(path: choice.path)
            let looksLikePath = choice.name.contains("/") || choice.name.hasSuffix(".safetensors")
            let name = looksLikePath ? ((choice.path as NSString).lastPathComponent as NSString).deletingPathExtension : choice.name
            var words: [String] = []
            for word in [facts?.token, facts?.className, name] {
                if let word, !word.isEmpty, !words.contains(word) { words.append(word) }
            }
            return Concept(name: name, choice: choice, token: facts?.token, className: facts?.className, prompt: "", words: words)
        }
        if prompt == nil { self.prompt = Self.defaultPrompt(concepts, placed: regions.isEmpty) }
        let prompt = self.prompt
        for (index, concept) in concepts.enumerated() {
            if let earlier = concepts[..<index].first(where: { $0.name == concept.name }) {
                throw ComposeInputError("--lora \(concept.name) is given twice ('\(earlier.choice.path)' and '\(concept.choice.path)'); "
                                        + "to compose two concepts give two different LoRAs")
            }
        }

        func index(of name: String, option: String) throws -> Int {
            let matches = concepts.indices.filter { concepts[$0].aliases.contains(name) }
            guard let first = matches.first else {
                throw ComposeInputError("\(option) '\(name)' names no loaded LoRA (loaded: \(concepts.map(\.name).joined(separator: ", ")))")
            }
            guard matches.count == 1 else {
                throw ComposeInputError("\(option) '\(name)' fits several LoRAs: \(matches.map { concepts[$0].name }.joined(separator: ", "))")
            }
            return first
        }

        // Regions (LoRA-Composer only).
        if method != .composer, let region = regions.first {
            throw ComposeInputError("--region \(region.name)=…: regions place concepts for --method composer only; "
                                    + "\(method.rawValue) takes none")
        }
        if method == .composer {
            if regions.isEmpty {
                for (index, box) in ConceptBox.sideBySide(count: concepts.count).enumerated() { concepts[index].box = box }
            } else {
                for region in regions {
                    let target = try index(of: region.name, option: "--region")
                    if concepts[target].box != nil {
                        throw ComposeInputError("--region: \(concepts[target].name) has two regions; give one per LoRA")
                    }
                    do { try region.box.validate(concept: concepts[target].name) } catch { throw ComposeInputError(describe(error)) }
                    concepts[target].box = region.box
                }
                let missing = concepts.filter { $0.box == nil }.map(\.name)
                if !missing.isEmpty {
                    throw ComposeInputError("\(concepts.count) LoRAs but \(regions.count) region\(regions.count == 1 ? "" : "s"): "
                                            + "give a --region for \(missing.joined(separator: ", ")) (or no --region for an automatic side-by-side layout)")
                }
            }
            for first in concepts.indices {
                for second in concepts.indices where second > first {
                    if let a = concepts[first].box, let b = concepts[second].box, a.overlaps(b) {
                        throw ComposeInputError(describe(CompositionError.boxesOverlap(concepts[first].name, a, concepts[second].name, b)))
                    }
                }
            }
        }

        // Concept prompts.
        if method == .merge, let given = conceptPrompts.first {
            throw ComposeInputError("--concept-prompt \(given.name)=…: merging renders the global prompt only; "
                                    + "concept prompts are for --method composer and clora")
        }
        var given: [Int: String] = [:]
        for conceptPrompt in conceptPrompts {
            let target = try index(of: conceptPrompt.name, option: "--concept-prompt")
            guard given[target] == nil else {
                throw ComposeInputError("--concept-prompt: \(concepts[target].name) has two prompts; give one per LoRA")
            }
            given[target] = conceptPrompt.prompt
        }
        for index in concepts.indices {
            switch method {
            case .composer: concepts[index].prompt = given[index] ?? Self.regionPrompt(concepts[index], globalPrompt: prompt)
            case .clora: concepts[index].prompt = given[index] ?? Self.loraPrompt(concepts[index], globalPrompt: prompt)
            case .merge: concepts[index].prompt = prompt
            }
        }
        self.concepts = concepts
    }

    /// The global prompt when none is given: each concept as "a WORD" (its class word from the
    /// file's metadata, else its name; the names when two share a class word), placed as the
    /// default side-by-side boxes stand when `placed`: "a cat on the left and a dog on the right";
    /// three: "…, a dog in the middle and …"; more: "a cat, a dog, … and a robot side by side".
    /// Not `placed` (boxes given by --region): "a cat and a dog", "a cat, a dog and a robot".
    static func defaultPrompt(_ concepts: [Concept], placed: Bool = true) -> String {
        var words = concepts.map { $0.className ?? $0.name }
        if Set(words).count < words.count { words = concepts.map(\.name) }
        let names = words.map { "a " + $0 }
        guard placed || names.count == 1 else { return names.dropLast().joined(separator: ", ") + " and \(names.last!)" }
        switch names.count {
        case 1: return names[0]
        case 2: return "\(names[0]) on the left and \(names[1]) on the right"
        case 3: return "\(names[0]) on the left, \(names[1]) in the middle and \(names[2]) on the right"
        default: return names.dropLast().joined(separator: ", ") + " and \(names.last!) side by side"
        }
    }

    /// LoRA-Composer's default region prompt: "a <token> <class>" from the file's metadata, else
    /// "a NAME", followed by the global prompt's background phrase when it has one ("a cat on a
    /// green background"). Ours: the side-by-side boxes cover most of the picture, and inside them
    /// only the region prompts reach the cross-attention; without the background words the shipped
    /// base painted purple-blue smears where the background should be.
    public static func regionPrompt(_ concept: Concept, globalPrompt: String = "") -> String {
        let subject: String
        switch (concept.token, concept.className) {
        case let (token?, className?): subject = "a \(token) \(className)"
        case let (token?, nil): subject = "a \(token)"
        default: subject = "a \(concept.name)"
        }
        return CaptionReading.backgroundPhrase(in: globalPrompt).map { subject + " " + $0 } ?? subject
    }

    /// CLoRA's default prompt for a LoRA: the global prompt with the LoRA's token put before the
    /// first word that names the concept (as the reference's "A sks cat and a dog"), when the file
    /// stores a token the global prompt lacks; else the global prompt.
    public static func loraPrompt(_ concept: Concept, globalPrompt: String) -> String {
        guard let token = concept.token, globalPrompt.range(of: token) == nil else { return globalPrompt }
        for word in [concept.className, concept.name].compactMap({ $0 }) {
            let pattern = "\\b" + NSRegularExpression.escapedPattern(for: word) + "\\b"
            if let range = globalPrompt.range(of: pattern, options: [.regularExpression, .caseInsensitive]) {
                return globalPrompt.replacingCharacters(in: range, with: "\(token) \(globalPrompt[range])")
            }
        }
        return globalPrompt
    }
}

/// A problem with `compose`'s input found before rendering; the message names the item.
public struct ComposeInputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
