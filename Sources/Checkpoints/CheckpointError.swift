import Foundation

/// Everything that can go wrong reading or writing checkpoint files.
///
/// Every case names the file, and the tensor or key where there is one, and says what was
/// expected and what was found, so that the CLI can print `description` and stop. This mirrors
/// the checks of the safetensors reference (`safetensors/src/tensor.rs`, `SafeTensorError`),
/// with the context its messages leave out.
public enum CheckpointError: Error, Equatable, Sendable {
    /// The file could not be opened, inspected or mapped.
    case cannotOpen(path: String, reason: String)
    /// The file (or its temporary sibling) could not be created, written or renamed.
    case cannotWrite(path: String, reason: String)
    /// The file is shorter than the 8-byte header length that every safetensors file starts with.
    case fileTooShort(path: String, size: Int)
    /// The header length declared in the first 8 bytes is above the reference's 100 MB limit.
    case headerTooLarge(path: String, declared: UInt64, limit: Int)
    /// The declared header length runs past the end of the file.
    case headerPastEnd(path: String, declared: UInt64, bytesAfterLength: Int)
    /// The header is not valid UTF-8 JSON; `byteOffset` counts from the start of the file.
    case malformedHeader(path: String, byteOffset: Int, reason: String)
    /// A header field has the wrong type or value. `tensor` is nil for fields outside a tensor
    /// entry (the header object itself, `__metadata__`).
    case invalidField(path: String, tensor: String?, key: String, expected: String, found: String)
    /// Two tensors share one name.
    case duplicateTensor(path: String, tensor: String)
    /// The dtype string is not one that safetensors defines.
    case unknownDType(path: String, tensor: String, dtype: String)
    /// A tensor does not start where the previous one (in offset order) ends: a hole or an overlap.
    case offsetsNotContiguous(path: String, tensor: String, previousTensor: String?, expectedBegin: Int, foundBegin: Int)
    /// A tensor's byte range does not hold exactly shape × dtype-size bytes.
    case byteSizeMismatch(path: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int, foundBytes: Int)
    /// The data buffer after the header is longer or shorter than the last tensor's end offset.
    case bufferLengthMismatch(path: String, lastTensor: String?, expectedBytes: Int, foundBytes: Int)
    /// No tensor of this name is in the file.
    case tensorNotFound(path: String, tensor: String)
    /// The tensor's dtype has no conversion to (or from) the requested one.
    case unsupportedConversion(path: String, tensor: String, from: String, to: String)
    /// The caller's element count does not match the tensor's shape.
    case elementCountMismatch(path: String, tensor: String, expected: Int, found: Int)
}

extension CheckpointError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open: \(reason)"
        case let .cannotWrite(path, reason):
            return "\(path): cannot write: \(reason)"
        case let .fileTooShort(path, size):
            return "\(path): file is \(size) bytes; a safetensors file starts with an 8-byte header length"
        case let .headerTooLarge(path, declared, limit):
            return "\(path): header length \(declared) bytes exceeds the limit of \(limit) bytes"
        case let .headerPastEnd(path, declared, bytesAfterLength):
            return "\(path): header length \(declared) bytes runs past the end of the file "
                + "(only \(bytesAfterLength) bytes follow the length field)"
        case let .malformedHeader(path, byteOffset, reason):
            return "\(path): malformed JSON header at byte \(byteOffset): \(reason)"
        case let .invalidField(path, tensor, key, expected, found):
            let subject = tensor.map { "tensor '\($0)': " } ?? ""
            return "\(path): \(subject)'\(key)': expected \(expected), found \(found)"
        case let .duplicateTensor(path, tensor):
            return "\(path): tensor '\(tensor)': name appears more than once"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor '\(tensor)': unknown dtype \"\(dtype)\"; expected one of "
                + SafeTensors.DType.allCases.map(\.rawValue).joined(separator: ", ")
        case let .offsetsNotContiguous(path, tensor, previousTensor, expectedBegin, foundBegin):
            let after = previousTensor.map { "after tensor '\($0)'" } ?? "at the start of the data buffer"
            let problem = foundBegin < expectedBegin
                ? "overlaps the preceding data by \(expectedBegin - foundBegin) bytes"
                : "leaves a hole of \(foundBegin - expectedBegin) bytes"
            return "\(path): tensor '\(tensor)': data_offsets begin at \(foundBegin), expected \(expectedBegin) "
                + "\(after); it \(problem)"
        case let .byteSizeMismatch(path, tensor, dtype, shape, expectedBytes, foundBytes):
            return "\(path): tensor '\(tensor)': shape \(shape) of \(dtype) needs \(expectedBytes) bytes, "
                + "data_offsets span \(foundBytes) bytes"
        case let .bufferLengthMismatch(path, lastTensor, expectedBytes, foundBytes):
            let end = lastTensor.map { "the end of tensor '\($0)'" } ?? "no tensors"
            return "\(path): data buffer is \(foundBytes) bytes, expected \(expectedBytes) bytes (\(end)); "
                + "the file has \(foundBytes > expectedBytes ? "extra" : "missing") bytes"
        case let .tensorNotFound(path, tensor):
            return "\(path): no tensor named '\(tensor)'"
        case let .unsupportedConversion(path, tensor, from, to):
            return "\(path): tensor '\(tensor)': cannot convert \(from) to \(to)"
        case let .elementCountMismatch(path, tensor, expected, found):
            return "\(path): tensor '\(tensor)': expected \(expected) elements, found \(found)"
        }
    }
}

extension CheckpointError: LocalizedError {
    public var errorDescription: String? { description }
}
