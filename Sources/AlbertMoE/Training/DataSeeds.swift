// The data pipeline's random streams (the validation split, the epoch order, the shuffle buffer, the collator's
// masking) each start from a seed derived from the run's seed and a purpose, so that no two coincide and each is
// the same on every machine.

/// What a derived seed is used for.
enum SeedPurpose: UInt64 {
    case split = 1, epochOrder, shuffleBuffer, collator
}

/// Mixes several values into one 64-bit seed (SplitMix64 finaliser after each value).
func mixSeeds(_ values: UInt64...) -> UInt64 {
    var hash: UInt64 = 0x243F_6A88_85A3_08D3
    for value in values {
        var z = (hash ^ value) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        hash = z ^ (z >> 31)
    }
    return hash
}
