/// FNV-1a over UTF-8: the same value in every process and run, unlike Swift's seeded `Hasher`.
/// Home invokers and overlay names must agree across controllers and invokers, so they use this.
public enum StableHash {
    public static func fnv1a(_ text: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
        return value
    }
}
