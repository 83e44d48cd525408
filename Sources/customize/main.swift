import ArgumentParser
import Foundation

struct Customize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customize",
        abstract: "Customize compact text-to-video and text-to-image diffusion models on a CPU.")
}

Customize.main()
