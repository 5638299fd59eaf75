// How messages name an object's kind: "object 3 is a list, not an array".

extension ManagedKind {
    /// The kind's name in messages: `list`, `array`, `RLock`, `bounded semaphore`.
    var spokenName: String {
        switch self {
        case .rLock: "RLock"
        case .boundedSemaphore: "bounded semaphore"
        default: "\(self)"
        }
    }

    /// The name with its indefinite article: `a list`, `an array`, `an RLock`.
    var withArticle: String { withIndefiniteArticle(spokenName) }
}

/// `noun` after `a` or `an`, by how it is spoken: `an` before a vowel, and before `RLock` (said
/// "ar-lock"). Every kind's name and every request kind's name (`ObjectRequest.kindName`) is
/// one of these.
func withIndefiniteArticle(_ noun: String) -> String {
    guard let first = noun.first else { return noun }
    let vowelSound = "aeiouAEIOU".contains(first) || noun.hasPrefix("RL")
    return (vowelSound ? "an " : "a ") + noun
}
