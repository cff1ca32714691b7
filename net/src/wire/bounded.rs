//! Sequences on the wire with a most number of elements, refused while decoding: the count
//! of a list in a message never decides how many elements a peer makes us hold. (Byte
//! strings need no such bound: their bytes are the frame's, already bounded.)
//!
//! Each list field of a message names its bound with
//! `#[serde(deserialize_with = "bounded::most::<N, _, _>")]`; the sender keeps within the
//! same constants, so an honest message is never refused.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Deserialize, Error, SeqAccess, Visitor};

/// Arguments of one task.
pub(crate) const ARGS: usize = 4096;
/// Fingerprints of the tasks one peer registers.
pub(crate) const FINGERPRINTS: usize = 65_536;
/// Notices of each kind in one `Notify`.
pub(crate) const NOTICES: usize = 65_536;
/// Calls in one batch task.
pub(crate) const CALLS: usize = 1024;
/// Tasks in one push or steal answer.
pub(crate) const TASKS: usize = 4096;
/// Tasks asked about in one audit, or answered as not held.
pub(crate) const AUDIT: usize = 4096;
/// Changes in one replication batch.
pub(crate) const DELTAS: usize = 65_536;
/// Tasks of one detached job.
pub(crate) const JOB_TASKS: usize = 65_536;
/// Events in one gossip batch.
pub(crate) const EVENTS: usize = 4096;
/// Suspicions one peer reports (its newest).
pub(crate) const SUSPICIONS: usize = 16;
/// Permit holders, queued items or remembered entries of one primitive.
pub(crate) const PRIM_ENTRIES: usize = 1 << 20;

/// A list type a bounded sequence decodes into.
pub(crate) trait List: Default {
    type Item;
    fn push(&mut self, item: Self::Item);
}

impl<T> List for Vec<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
}

impl<T> List for std::collections::VecDeque<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
}

/// Decodes a sequence of at most `MAX` elements into `C`.
pub(crate) fn most<'de, const MAX: usize, D, C>(decoder: D) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    C: List,
    C::Item: Deserialize<'de>,
{
    decoder.deserialize_seq(Most::<MAX, C>(PhantomData))
}

/// Decodes a sequence of at most `MAX` elements into a shared slice (one allocation kept,
/// cloned by a count).
pub(crate) fn most_shared<'de, const MAX: usize, D, T>(
    decoder: D,
) -> Result<std::sync::Arc<[T]>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    most::<MAX, D, Vec<T>>(decoder).map(Into::into)
}

struct Most<const MAX: usize, C>(PhantomData<C>);

impl<'de, const MAX: usize, C> Visitor<'de> for Most<MAX, C>
where
    C: List,
    C::Item: Deserialize<'de>,
{
    type Value = C;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
        if let Some(len) = seq.size_hint().filter(|len| *len > MAX) {
            return Err(A::Error::invalid_length(len, &self));
        }
        let mut out = C::default();
        let mut len = 0;
        while let Some(element) = seq.next_element()? {
            len += 1;
            if len > MAX {
                return Err(A::Error::invalid_length(len, &self));
            }
            out.push(element);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Three {
        #[serde(deserialize_with = "super::most::<3, _, _>")]
        items: Vec<u64>,
    }

    #[test]
    fn a_longer_sequence_is_refused_from_its_count() {
        let ok = Three {
            items: vec![1, 2, 3],
        };
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Three>(&bytes).unwrap(), ok);
        let long = postcard::to_allocvec(&vec![1u64, 2, 3, 4]).unwrap();
        assert!(postcard::from_bytes::<Three>(&long).is_err());
        // A count of four billion and no elements: refused, nothing reserved.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(postcard::from_bytes::<Three>(&huge).is_err());
    }
}
