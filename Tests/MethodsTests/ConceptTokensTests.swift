import Models
import XCTest
@testable import Methods

/// Concept words → token positions, and boxes → attention-grid cells.
final class ConceptTokensTests: XCTestCase {
    static let tokenizer = try! CLIPTokenizer(folder: CompositionFixtures.pipelineFolder + "/tokenizer")

    func testWordsAreFoundAtTheirPositionsAfterTheBeginToken() {
        let tokenizer = Self.tokenizer
        // <|startoftext|> a cat and a dog <|endoftext|>: cat at 2, dog at 5 (not 6, the end token:
        // the index CLoRA's notebook gets wrong).
        XCTAssertEqual(ConceptTokens.positions(of: "cat", in: "a cat and a dog", tokenizer: tokenizer), [2])
        XCTAssertEqual(ConceptTokens.positions(of: "dog", in: "a cat and a dog", tokenizer: tokenizer), [5])
        XCTAssertEqual(tokenizer("a cat and a dog").tokens[5], "dog")
        XCTAssertEqual(ConceptTokens.positions(of: "Dog", in: "A Cat and a DOG", tokenizer: tokenizer), [5])
        XCTAssertEqual(ConceptTokens.positions(of: ["cat", "dog"], in: "a dog and a cat and a dog", tokenizer: tokenizer), [2, 5, 8])
        XCTAssertEqual(ConceptTokens.positions(of: "bird", in: "a cat and a dog", tokenizer: tokenizer), [])
        XCTAssertEqual(ConceptTokens.describe([2, 5], in: "a cat and a dog", tokenizer: tokenizer), "2 (cat), 5 (dog)")
    }

    func testAWordOfSeveralTokensGivesAllOfThemAndOnlyAtWordBoundaries() throws {
        let tokenizer = Self.tokenizer
        // "catdog" is not in the fixture's vocabulary: BPE splits it.
        let pieces = tokenizer.tokenStrings("catdog")
        XCTAssertGreaterThan(pieces.count, 1, "\(pieces)")
        let prompt = "a catdog and a dog"
        XCTAssertEqual(ConceptTokens.positions(of: "catdog", in: prompt, tokenizer: tokenizer), Array(2 ..< 2 + pieces.count))
        // The "dog" that ends "catdog" is not the word dog.
        XCTAssertEqual(ConceptTokens.positions(of: "dog", in: prompt, tokenizer: tokenizer), [pieces.count + 4])
        // A trigger token such as <cat> is three tokens: <, cat, >.
        XCTAssertEqual(ConceptTokens.positions(of: "<cat>", in: "a <cat> cat", tokenizer: tokenizer), [2, 3, 4])
        XCTAssertEqual(ConceptTokens.positions(of: ["<cat>", "cat"], in: "a <cat> cat", tokenizer: tokenizer), [2, 3, 4, 5])
    }

    func testWordsBeyondTheTokenLimitAreNotFound() {
        let tokenizer = Self.tokenizer
        XCTAssertEqual(tokenizer.maxLength, 16)
        let prompt = Array(repeating: "a", count: 14).joined(separator: " ") + " cat"
        XCTAssertEqual(ConceptTokens.positions(of: "cat", in: prompt, tokenizer: tokenizer), [])
        let fits = Array(repeating: "a", count: 13).joined(separator: " ") + " cat"
        XCTAssertEqual(ConceptTokens.positions(of: "cat", in: fits, tokenizer: tokenizer), [14])
    }

    func testBoxesRoundTheirCellsAsTheReferenceDoes() throws {
        let box = ConceptBox(x0: 0.3, y0: 0.1, x1: 0.45, y1: 0.9)
        // ceil(0.3·4) = 2, floor(0.45·4) = 1: no column of a 4-wide grid.
        XCTAssertTrue(box.cells(height: 4, width: 4).columns.isEmpty)
        let (rows, columns) = box.cells(height: 20, width: 20)
        XCTAssertEqual(rows, 2 ..< 18)
        XCTAssertEqual(columns, 6 ..< 9)
        XCTAssertEqual(box.mask(height: 20, width: 20).reduce(0, +), Float(16 * 3))
        XCTAssertEqual(ConceptBox.fullImage.cells(height: 3, width: 5).rows, 0 ..< 3)
        XCTAssertEqual(ConceptBox.fullImage.cells(height: 3, width: 5).columns, 0 ..< 5)

        let sideBySide = ConceptBox.sideBySide(count: 2)
        XCTAssertEqual(sideBySide, [ConceptBox(x0: 0, y0: 0.1, x1: 0.5, y1: 0.9), ConceptBox(x0: 0.5, y0: 0.1, x1: 1, y1: 0.9)])
        XCTAssertFalse(sideBySide[0].overlaps(sideBySide[1]), "touching edges do not overlap")
        XCTAssertTrue(ConceptBox(x0: 0, y0: 0, x1: 0.6, y1: 1).overlaps(sideBySide[1]))
        XCTAssertEqual(sideBySide[1].description, "0.5,0.1,1,0.9")
    }

    func testBadBoxesAreNamedErrors() {
        XCTAssertThrowsError(try ConceptBox(x0: -0.1, y0: 0, x1: 0.5, y1: 1).validate(concept: "cat")) { error in
            XCTAssertEqual(error as? CompositionError, .boxOutOfRange(concept: "cat", box: ConceptBox(x0: -0.1, y0: 0, x1: 0.5, y1: 1)))
            XCTAssertTrue("\(error)".contains("region of cat"), "\(error)")
        }
        XCTAssertThrowsError(try ConceptBox(x0: 0, y0: 0, x1: 1.2, y1: 1).validate(concept: "dog")) { error in
            XCTAssertTrue("\(error)".contains("dog") && "\(error)".contains("outside the image"), "\(error)")
        }
        XCTAssertThrowsError(try ConceptBox(x0: 0.6, y0: 0, x1: 0.4, y1: 1).validate(concept: "dog")) { error in
            XCTAssertEqual(error as? CompositionError, .emptyBox(concept: "dog", box: ConceptBox(x0: 0.6, y0: 0, x1: 0.4, y1: 1)))
        }
        XCTAssertThrowsError(try ConceptBox(x0: .nan, y0: 0, x1: 0.4, y1: 1).validate(concept: "dog"))
        XCTAssertNoThrow(try ConceptBox.fullImage.validate(concept: "cat"))
    }

    func testFeatureGridsFollowTheUNetsDownsampling() throws {
        XCTAssertEqual(FeatureGrid.resolve(tokens: 64, latentHeight: 8, latentWidth: 8), FeatureGrid(height: 8, width: 8))
        XCTAssertEqual(FeatureGrid.resolve(tokens: 16, latentHeight: 8, latentWidth: 8), FeatureGrid(height: 4, width: 4))
        // Odd sides round up at each level: 10×6 → 5×3 → 3×2.
        XCTAssertEqual(FeatureGrid.resolve(tokens: 6, latentHeight: 10, latentWidth: 6), FeatureGrid(height: 3, width: 2))
        XCTAssertNil(FeatureGrid.resolve(tokens: 7, latentHeight: 8, latentWidth: 8))
        // The fixture U-Net: cross-attention at 8×8 (down 0, up 1) and 4×4 (mid); the analysis grid is
        // the lowest-but-one, 8×8.
        let pipeline = try CompositionFixtures.pipeline()
        let layers = SpatialAttentionLayers(unet: pipeline.unet)
        XCTAssertEqual(layers.crossAttentionGrids(latentHeight: 8, latentWidth: 8),
                       [FeatureGrid(height: 8, width: 8), FeatureGrid(height: 4, width: 4)])
        XCTAssertEqual(try layers.analysisGrid(latentHeight: 8, latentWidth: 8), FeatureGrid(height: 8, width: 8))
        XCTAssertTrue(layers.layers.allSatisfy { !$0.path.contains("temp_attentions") && !$0.path.hasPrefix("transformer_in") })
        XCTAssertEqual(layers.crossAttention.count, layers.selfAttention.count)
        XCTAssertFalse(layers.crossAttention.isEmpty)
    }
}
