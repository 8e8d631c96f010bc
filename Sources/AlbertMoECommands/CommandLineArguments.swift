import Foundation

/// The command-line arguments as the commands parse them. The argument parser reads a word that starts with "-"
/// as an option, so `--batch_size -1` would be a missing value and an unknown option `-1`; here a negative number
/// after an option is its value, which the option's check then names ("--batch_size must be at least 1, got -1").
public enum CommandLineArguments {
    /// The arguments of this process (without the executable's path), negative values attached.
    public static var current: [String] { attachingNegativeValues(Array(CommandLine.arguments.dropFirst())) }

    /// `arguments` with each `--name NUMBER` whose number is negative (`-1`, `-0.5`, `-1e3`, `-inf`) written as
    /// `--name=NUMBER`; the rest, and everything after `--`, as it is.
    public static func attachingNegativeValues(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            if word == "--" {
                out += arguments[index...]
                break
            }
            let next = index + 1 < arguments.endIndex ? arguments[index + 1] : nil
            if word.hasPrefix("--"), !word.contains("="), let next, next.hasPrefix("-"), Double(next) != nil {
                out.append("\(word)=\(next)")
                index += 2
            } else {
                out.append(word)
                index += 1
            }
        }
        return out
    }
}
