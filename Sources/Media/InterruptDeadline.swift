import CFFmpeg
import Foundation

/// A wall-clock deadline that FFmpeg polls through `AVIOInterruptCB` during blocking I/O and
/// probing, and that our own demux/decode loops check between packets: a pathological file
/// (endless probing, a huge stream of tiny packets) then ends in an error instead of a hang.
final class InterruptDeadline: Sendable {
    /// Seconds on the monotonic clock after which work stops.
    private let deadline: Double
    let seconds: Double

    init(seconds: Double) {
        self.seconds = seconds
        self.deadline = InterruptDeadline.now() + seconds
    }

    var hasPassed: Bool { InterruptDeadline.now() > deadline }

    /// An `AVIOInterruptCB` whose `opaque` is this object, unretained: the owner keeps the deadline
    /// alive for as long as the format context that holds the callback.
    var callback: AVIOInterruptCB {
        AVIOInterruptCB(
            callback: { opaque in
                guard let opaque else { return 0 }
                return Unmanaged<InterruptDeadline>.fromOpaque(opaque).takeUnretainedValue().hasPassed ? 1 : 0
            },
            opaque: Unmanaged.passUnretained(self).toOpaque())
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
