//! Where a name lives: rendezvous (highest-random-weight) hashing of a name over the peers
//! a node counts as candidates. Detached jobs use it to agree on an orphan's successor, and
//! named primitives to rank a key's home and the backups that keep its copies.
//!
//! Every peer with the same candidates computes the same order, and removing a candidate
//! moves only the names it had: no coordination, and little movement when peers come and
//! go.

use peer_core::ext::fnv1a;

/// The peer among `candidates` with the highest rendezvous score for `name` (0 if there
/// is none).
pub(super) fn successor(name: &str, candidates: &[u64]) -> u64 {
    let name_hash = fnv1a(name.as_bytes());
    candidates
        .iter()
        .copied()
        .max_by_key(|peer| score(name_hash, *peer))
        .unwrap_or_default()
}

/// `candidates` by rendezvous score for `name`, highest first: [`successor`] and then the
/// peer that would succeed it.
pub(super) fn ranked(name: &str, candidates: &[u64]) -> Vec<u64> {
    let name_hash = fnv1a(name.as_bytes());
    let mut ranked = candidates.to_vec();
    ranked.sort_unstable_by_key(|peer| std::cmp::Reverse(score(name_hash, *peer)));
    ranked.dedup();
    ranked
}

fn score(name_hash: u64, peer: u64) -> (u64, u64) {
    (mix(name_hash ^ peer.rotate_left(17)), peer)
}

/// SplitMix64's finaliser: spreads the bits of a hash.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_with_the_same_candidates_picks_the_same_successor() {
        let candidates = [11, 22, 33, 44];
        let mut shuffled = candidates;
        shuffled.reverse();
        for name in ["a", "job-1", "queue:work"] {
            assert_eq!(successor(name, &candidates), successor(name, &shuffled));
            assert_eq!(ranked(name, &candidates)[0], successor(name, &candidates));
        }
    }

    #[test]
    fn removing_a_candidate_moves_only_its_names() {
        let all = [1, 2, 3, 4, 5];
        let without_3 = [1, 2, 4, 5];
        for n in 0..200 {
            let name = format!("name-{n}");
            let before = successor(&name, &all);
            if before != 3 {
                assert_eq!(successor(&name, &without_3), before, "{name} moved");
            }
        }
    }

    #[test]
    fn no_candidate_gives_zero() {
        assert_eq!(successor("x", &[]), 0);
        assert!(ranked("x", &[]).is_empty());
    }
}
