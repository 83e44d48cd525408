import Adapters
import Foundation
import Models
import Tensor

/// Break-for-Make's "make": one adapter from a content and a style PLP adapter. Up = the style
/// adapter's B (its learnable rows are the style), down = the content adapter's A (its learnable
/// columns are the content); the frozen halves are shared, and are checked to be: a pair trained
/// with another seed or rank is refused, naming the module and the half that differ.
public enum PLPAssembly {
    /// The assembled LoRAs, named `adapterName`, on `model`'s layers (not attached to it).
    public static func assemble(content contentFile: String, style styleFile: String, model: Module,
                                adapterName: String) throws -> [LoRA] {
        let scratch = AdapterSet(model: model, component: "unet")
        let contentReport = try scratch.load(contentFile, as: "content")
        defer { try? scratch.remove("content") }
        let styleReport = try scratch.load(styleFile, as: "style")
        defer { try? scratch.remove("style") }
        for (file, report, role) in [(contentFile, contentReport, BreakTraining.Role.content), (styleFile, styleReport, .style)] {
            guard report.metadata.method == role.method else {
                let found = report.metadata.method.map { "method \"\($0)\"" } ?? "no method"
                throw MethodError.badAdapter(file: file, reason: "is not a \(role == .content ? "train-content" : "train-style") adapter (it records \(found), expected \"\(role.method)\")")
            }
        }
        let contentLoRAs = try scratch.loras(of: "content"), styleLoRAs = try scratch.loras(of: "style")
        let styleByPath = Dictionary(styleLoRAs.map { ($0.modulePath, $0) }, uniquingKeysWith: { first, _ in first })
        guard Set(contentLoRAs.map(\.modulePath)) == Set(styleByPath.keys) else {
            let onlyContent = Set(contentLoRAs.map(\.modulePath)).subtracting(styleByPath.keys).sorted()
            let onlyStyle = Set(styleByPath.keys).subtracting(contentLoRAs.map(\.modulePath)).sorted()
            throw MethodError.badAdapter(file: styleFile, reason: "adapts other layers than \(contentFile)"
                + (onlyContent.first.map { "; only the content adapter has \($0)" } ?? "")
                + (onlyStyle.first.map { "; only the style adapter has \($0)" } ?? ""))
        }
        return try contentLoRAs.map { content in
            let style = styleByPath[content.modulePath]!
            try checkFrozenHalves(content: content, style: style, contentFile: contentFile, styleFile: styleFile)
            return try LoRA(adapterName: adapterName, modulePath: content.modulePath, geometry: content.geometry,
                            alpha: content.alpha, useRSLoRA: content.useRSLoRA, down: content.down.detached().copy(),
                            up: style.up.detached().copy())
        }
    }

    /// Throws unless both LoRAs have one rank and bit-identical frozen halves.
    static func checkFrozenHalves(content: LoRA, style: LoRA, contentFile: String, styleFile: String) throws {
        let path = content.modulePath
        guard content.rank == style.rank else {
            throw MethodError.badAdapter(file: styleFile, reason: "\(path) has rank \(style.rank), \(contentFile) has rank \(content.rank); "
                + "train content and style with the same --rank and --seed")
        }
        guard content.alpha == style.alpha, content.geometry == style.geometry else {
            throw MethodError.badAdapter(file: styleFile, reason: "\(path) has another alpha or shape than in \(contentFile)")
        }
        let rank = content.rank, inputs = content.geometry.inputs
        let frozenColumns = PLPAdapter.frozenDownColumns(content.geometry)
        let a = content.down.data, b = style.down.data
        for k in 0..<rank {
            for j in 0..<frozenColumns where a[k * inputs + j].bitPattern != b[k * inputs + j].bitPattern {
                throw MethodError.badAdapter(file: styleFile, reason: "the frozen half of \(path).lora_A differs from \(contentFile)'s "
                    + "(row \(k), column \(j)); train content and style with the same --seed and --rank")
            }
        }
        let frozenEntries = PLPAdapter.frozenUpRows(content.geometry) * rank
        let c = content.up.data, d = style.up.data
        for index in 0..<frozenEntries where c[index].bitPattern != d[index].bitPattern {
            throw MethodError.badAdapter(file: styleFile, reason: "the frozen half of \(path).lora_B differs from \(contentFile)'s "
                + "(row \(index / rank)); train content and style with the same --seed and --rank")
        }
    }
}
