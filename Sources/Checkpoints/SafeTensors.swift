import Foundation

/// The safetensors format (https://github.com/huggingface/safetensors), as written by
/// `safetensors.torch.save_file` and read by diffusers' `load_file`:
///
///     [8 bytes]  N, the header length, little-endian UInt64
///     [N bytes]  UTF-8 JSON: {"__metadata__": {string: string},
///                             "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
///                padded with spaces to a multiple of 8 bytes
///     [rest]     the data buffer; offsets count from its first byte, tensors are little-endian,
///                row-major, and tile the buffer from 0 to its end without holes or overlaps.
///
/// Reading is `SafeTensorsFile`; writing is `SafeTensors.write`.
public enum SafeTensors {
    /// The header size limit of the reference reader (`MAX_HEADER_SIZE` in `tensor.rs`).
    public static let maximumHeaderLength = 100_000_000

    /// The header key that holds the free-form string→string metadata.
    public static let metadataKey = "__metadata__"

    /// A tensor's element type, spelled as in the header. The cases are declared in the order of
    /// the reference's `Dtype` enum, which is also its alignment order; the writer uses it.
    public enum DType: String, CaseIterable, Sendable {
        case bool = "BOOL"
        case f4 = "F4"
        case f6E2M3 = "F6_E2M3"
        case f6E3M2 = "F6_E3M2"
        case u8 = "U8"
        case i8 = "I8"
        case f8E5M2 = "F8_E5M2"
        case f8E4M3 = "F8_E4M3"
        case f8E8M0 = "F8_E8M0"
        case f8E4M3FNUZ = "F8_E4M3FNUZ"
        case f8E5M2FNUZ = "F8_E5M2FNUZ"
        case i16 = "I16"
        case u16 = "U16"
        case f16 = "F16"
        case bf16 = "BF16"
        case i32 = "I32"
        case u32 = "U32"
        case f32 = "F32"
        case c64 = "C64"
        case f64 = "F64"
        case i64 = "I64"
        case u64 = "U64"

        /// Bits per element; the FP4 and FP6 formats pack several elements into a byte.
        public var bitSize: Int {
            switch self {
            case .f4: return 4
            case .f6E2M3, .f6E3M2: return 6
            case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 8
            case .i16, .u16, .f16, .bf16: return 16
            case .i32, .u32, .f32: return 32
            case .c64, .f64, .i64, .u64: return 64
            }
        }

        /// Whether `SafeTensorsFile.floats` can turn this dtype into Float32 values. The packed
        /// sub-byte formats and complex numbers have no single Float per element.
        public var convertsToFloat: Bool {
            switch self {
            case .f4, .f6E2M3, .f6E3M2, .c64: return false
            default: return true
            }
        }

        /// Position in the reference's `Dtype` declaration order.
        var referenceRank: Int { Self.allCases.firstIndex(of: self)! }
    }

    /// One tensor's header entry.
    public struct TensorEntry: Equatable, Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// The tensor's bytes, relative to the start of the data buffer (as `data_offsets`).
        public let byteRange: Range<Int>

        /// Product of the shape; 1 for a scalar (empty shape).
        public var elementCount: Int { shape.reduce(1, *) }

        public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.byteRange = byteRange
        }
    }
}
