/// torch.nn.ModuleList: children named "0", "1", … so their parameters' paths read
/// `resnets.0.conv1.weight`, as in diffusers' state dicts.
public final class ModuleList<Element: Module>: Module {
    public let items: [Element]

    public init(_ items: [Element]) {
        self.items = items
        super.init()
        for (index, item) in items.enumerated() { child(String(index), item) }
    }

    public var count: Int { items.count }
    public subscript(index: Int) -> Element { items[index] }
}

extension ModuleList: Sequence {
    public func makeIterator() -> IndexingIterator<[Element]> { items.makeIterator() }
}
