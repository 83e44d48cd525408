import XCTest
@testable import Models
@testable import Tensor

final class ParameterInitializationTests: XCTestCase {
    func testLayersDrawTorchsDefaultRangesAndTemporalConvolutionsStartAsTheIdentity() throws {
        let unet = try UNet3DConditionModel(config: UNet3DConfig(blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4,
                                                                 crossAttentionDim: 16, attentionHeadDim: 4))
        try unet.initializeParameters(generator: RandomGenerator(seed: 3))
        var checkedLinear = false, checkedConv = false, checkedTemporal = false
        for (path, module) in unet.namedModules() {
            if let linear = module as? Linear {
                let bound = 1 / Float(linear.inFeatures).squareRoot()
                XCTAssertTrue(linear.weight.values.allSatisfy { abs($0) <= bound }, path)
                XCTAssertGreaterThan(linear.weight.values.map(abs).max()!, bound * 0.5, path)
                checkedLinear = true
            } else if let conv = module as? Conv2d {
                let bound = 1 / Float(conv.inChannels * conv.kernelSize * conv.kernelSize).squareRoot()
                XCTAssertTrue(conv.weight.values.allSatisfy { abs($0) <= bound }, path)
                XCTAssertTrue(conv.bias!.values.contains { $0 != 0 }, path)
                checkedConv = true
            } else if let conv = module as? Conv3dTemporal, path.contains("conv4") {
                XCTAssertTrue(conv.weight.values.allSatisfy { $0 == 0 }, path)
                checkedTemporal = true
            } else if let norm = module as? GroupNorm {
                XCTAssertTrue(norm.weight.values.allSatisfy { $0 == 1 }, path)
                XCTAssertTrue(norm.bias.values.allSatisfy { $0 == 0 }, path)
            }
        }
        XCTAssertTrue(checkedLinear && checkedConv && checkedTemporal)
        // The same seed gives the same weights; another seed different ones.
        let again = try UNet3DConditionModel(config: unet.config)
        try again.initializeParameters(generator: RandomGenerator(seed: 3))
        XCTAssertEqual(again.convIn.weight.values, unet.convIn.weight.values)
        try again.initializeParameters(generator: RandomGenerator(seed: 4))
        XCTAssertNotEqual(again.convIn.weight.values, unet.convIn.weight.values)
    }

    func testEmbeddingsDrawCLIPsNormalInitialisation() throws {
        let text = try CLIPTextModel(config: CLIPTextConfig(vocabSize: 500, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1,
                                                            numAttentionHeads: 2, maxPositionEmbeddings: 40))
        try text.initializeParameters(generator: RandomGenerator(seed: 1))
        func std(_ values: [Float]) -> Float {
            let mean = values.reduce(0, +) / Float(values.count)
            return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
        }
        XCTAssertEqual(std(text.textModel.embeddings.tokenEmbedding.weight.values), 0.02, accuracy: 0.002)
        XCTAssertEqual(std(text.textModel.embeddings.positionEmbedding.weight.values), 0.01, accuracy: 0.002)
    }
}
