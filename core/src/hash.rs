//! FNV-1a, 64 bits: the one stable hash of the workspace (task fingerprints here; peer
//! numbers and rendezvous placement in `peer-net`). Stable across builds, platforms and
//! processes, which `std`'s `DefaultHasher` is not; not meant to resist a chosen input.

/// FNV-1a's 64-bit offset basis.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const PRIME: u64 = 0x0100_0000_01b3;

/// A running FNV-1a hash, usable in `const` code.
///
/// ```
/// use peer_core::ext::{Fnv1a, fnv1a};
///
/// const H: u64 = Fnv1a::new().update(b"ab").update(b"c").finish();
/// assert_eq!(H, fnv1a(b"abc"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// The hash of nothing.
    pub const fn new() -> Fnv1a {
        Fnv1a(OFFSET)
    }

    /// The hash with `bytes` appended.
    #[must_use]
    pub const fn update(self, bytes: &[u8]) -> Fnv1a {
        let mut hash = self.0;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(PRIME);
            i += 1;
        }
        Fnv1a(hash)
    }

    /// The hash so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a::new()
    }
}

/// FNV-1a of `bytes`.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    Fnv1a::new().update(bytes).finish()
}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn updates_in_parts_agree_with_one_update() {
        let h = Fnv1a::default().update(b"foo").update(b"").update(b"bar");
        assert_eq!(h.finish(), fnv1a(b"foobar"));
    }
}
