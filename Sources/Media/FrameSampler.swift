/// Chooses which decoded frames a read keeps, from their presentation times alone, while frames
/// stream past once. A frame at time `t` lasting `d` stands for the interval `[t - d/2, t + d/2)`:
/// sampling picks, for each wanted instant, the frame nearest to it.
struct FrameSampler {
    enum Rule: Equatable {
        /// Every `stride`-th frame, counting from the first frame at `start`.
        case everyNth(stride: Int)
        /// Frames at instants `start + k / fps`; a frame is repeated when the file's own rate is lower.
        case rate(fps: Double)
    }

    let rule: Rule
    let start: Double
    let count: Int?
    private(set) var emitted = 0
    private var framesSinceStart = 0
    private var nextInstant: Int = 0

    init(rule: Rule, start: Double, count: Int?) {
        self.rule = rule
        self.start = start
        self.count = count
    }

    var isDone: Bool {
        guard let count else { return false }
        return emitted >= count
    }

    /// How many copies of the frame at `time` (lasting `duration` seconds) to keep, in order.
    mutating func copies(ofFrameAt time: Double, duration: Double) -> Int {
        let end = time + duration / 2
        guard end > start, !isDone else { return 0 }
        var copies = 0
        switch rule {
        case .everyNth(let stride):
            if framesSinceStart % stride == 0 { copies = 1 }
            framesSinceStart += 1
        case .rate(let fps):
            while start + Double(nextInstant) / fps < end {
                copies += 1
                nextInstant += 1
            }
        }
        if let count { copies = min(copies, count - emitted) }
        emitted += copies
        return copies
    }
}
