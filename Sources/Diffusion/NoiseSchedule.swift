import Foundation

/// The forward-process schedule shared by diffusers' DDPM, DDIM and Euler schedulers: betas,
/// alphas = 1 - betas and their cumulative product, in Float32 as torch holds them.
///
/// Mirrors the constructor code of those schedulers: `torch.linspace(..., dtype=torch.float32)`
/// for `linear`, its square over `sqrt(beta_start)…sqrt(beta_end)` for `scaled_linear`,
/// `betas_for_alpha_bar` (cosine, `max_beta` 0.999, in Python doubles) for `squaredcos_cap_v2`,
/// optional `rescale_zero_terminal_snr`, and `torch.cumprod`, which accumulates Float32 in Double.
public struct NoiseSchedule: Sendable, Equatable {
    public let betas: [Float]
    public let alphas: [Float]
    public let alphasCumprod: [Float]

    public init(config: SchedulerConfig) {
        var betas: [Float]
        let count = config.numTrainTimesteps
        if let trained = config.trainedBetas {
            betas = trained.map { Float($0) }
        } else {
            switch config.betaSchedule {
            case .linear:
                betas = Self.torchLinspace(Float(config.betaStart), Float(config.betaEnd), count)
            case .scaledLinear:
                betas = Self.torchLinspace(Float(config.betaStart.squareRoot()), Float(config.betaEnd.squareRoot()), count).map { $0 * $0 }
            case .squaredCosCapV2:
                betas = Self.cosineBetas(count)
            }
        }
        if config.rescaleBetasZeroSnr {
            betas = Self.rescaleZeroTerminalSNR(betas)
        }
        self.betas = betas
        self.alphas = betas.map { 1 - $0 }
        self.alphasCumprod = Self.cumulativeProduct(alphas)
    }

    /// A schedule from explicit arrays (Euler overrides the last cumulative alpha for zero SNR).
    public init(betas: [Float], alphas: [Float], alphasCumprod: [Float]) {
        self.betas = betas
        self.alphas = alphas
        self.alphasCumprod = alphasCumprod
    }

    /// `torch.linspace(start, end, steps, dtype=float32)` on the CPU: the step in Float, values
    /// from the start up to half way and from the end after it.
    static func torchLinspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
        guard steps > 1 else { return steps == 1 ? [start] : [] }
        let step = (end - start) / Float(steps - 1)
        let halfway = steps / 2
        return (0 ..< steps).map { index in
            index < halfway ? start + step * Float(index) : end - step * Float(steps - index - 1)
        }
    }

    /// `betas_for_alpha_bar(n, max_beta=0.999)` with the cosine `alpha_bar` of improved DDPM.
    static func cosineBetas(_ count: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double {
            let value = cos((t + 0.008) / 1.008 * Double.pi / 2)
            return value * value
        }
        return (0 ..< count).map { index in
            let t1 = Double(index) / Double(count)
            let t2 = Double(index + 1) / Double(count)
            return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
        }
    }

    /// `torch.cumprod` of Float32 values: accumulated in Double, each partial product stored as Float.
    static func cumulativeProduct(_ values: [Float]) -> [Float] {
        var product = 1.0
        return values.map { value in
            product *= Double(value)
            return Float(product)
        }
    }

    /// diffusers' `rescale_zero_terminal_snr` (Lin et al. 2023), in Float32 as torch runs it.
    static func rescaleZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        let cumprod = cumulativeProduct(betas.map { 1 - $0 })
        var roots = cumprod.map { $0.squareRoot() }
        let first = roots[0]
        let last = roots[roots.count - 1]
        let scale = first / (first - last)
        roots = roots.map { ($0 - last) * scale }
        let bars = roots.map { $0 * $0 }
        var alphas = [bars[0]]
        for index in 1 ..< bars.count { alphas.append(bars[index] / bars[index - 1]) }
        return alphas.map { 1 - $0 }
    }
}
