// swift-tools-version:6.0
import PackageDescription

/// Numeric targets are always compiled with full optimisation and without exclusivity checks:
/// their loops run over raw buffers, and a debug build of them is 10-100x slower.
/// On x86-64 they also use AVX2 and FMA (every x86 server CPU since 2013 has them; eight-lane
/// SIMD otherwise runs as two SSE halves). Build with CUSTOMIZE_PORTABLE=1 for older CPUs.
var numericFlags = ["-Ounchecked", "-enforce-exclusivity=unchecked"]
#if arch(x86_64)
if Context.environment["CUSTOMIZE_PORTABLE"] == nil {
    numericFlags += ["-Xcc", "-mavx2", "-Xcc", "-mfma"]
}
#endif
let numericSettings: [SwiftSetting] = [.unsafeFlags(numericFlags)]

let package = Package(
    name: "customize",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "customize", targets: ["customize"]),
        .library(name: "Tensor", targets: ["Tensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        .target(name: "Tensor", dependencies: ["CBLAS"], swiftSettings: numericSettings),
        .target(name: "Media", dependencies: ["CFFmpeg", "CPNG"], swiftSettings: numericSettings),
        .target(name: "Checkpoints", dependencies: ["Tensor"], swiftSettings: numericSettings),
        .target(name: "World", dependencies: ["Tensor"], swiftSettings: numericSettings),
        .target(name: "Models", dependencies: ["Tensor", "Checkpoints"], swiftSettings: numericSettings),
        .target(name: "Diffusion", dependencies: ["Models", "Tensor", "Checkpoints"], swiftSettings: numericSettings),
        .target(name: "Adapters", dependencies: ["Models", "Tensor", "Checkpoints"], swiftSettings: numericSettings),
        .target(name: "Methods", dependencies: ["Adapters", "Diffusion", "Models", "Tensor", "Checkpoints"],
                swiftSettings: numericSettings),
        .target(name: "Evaluation", dependencies: ["World", "Methods", "Adapters", "Diffusion", "Models", "Tensor", "Checkpoints", "Media"],
                swiftSettings: numericSettings),
        .executableTarget(name: "customize", dependencies: [
            "Tensor", "Media", "Checkpoints", "Models", "Diffusion", "World", "Adapters", "Methods", "Evaluation",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "MediaTests", dependencies: ["Media"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints"]),
        .testTarget(name: "WorldTests", dependencies: ["World"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion"]),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters"]),
        .testTarget(name: "MethodsTests", dependencies: ["Methods", "Adapters", "Diffusion", "Models", "Tensor"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "World", "Methods", "Media", "Checkpoints"]),
        .testTarget(name: "CLITests", dependencies: ["customize", "Evaluation", "Media", "Checkpoints"]),
    ],
    swiftLanguageModes: [.v5]
)
