//! Decoded arguments shared between calls: many tasks of a graph read the same large input
//! (the seed's data set, scored against 500 parameters), and on a swarm each receives it as
//! the same shared bytes. Decoding 100 KB for every call cost three times the work of a
//! 12 µs task (W2); here it is decoded once and kept while it is used.
//!
//! Entries are keyed by the identity of the shared bytes (the `Arc`, which the entry holds,
//! so the address cannot be reused for other bytes while the entry lives) and the type
//! decoded into. Only arguments of at least [`MIN_BYTES`] are kept; the most recently used
//! [`MAX_ENTRIES`] stay, up to [`MAX_BYTES`] of encoded bytes.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use super::registry::CallError;

/// Smaller arguments decode faster than a lookup: they are not kept.
pub(crate) const MIN_BYTES: usize = 4 << 10;
/// Most entries kept.
pub(crate) const MAX_ENTRIES: usize = 32;
/// Most encoded bytes the kept entries may hold alive.
pub(crate) const MAX_BYTES: usize = 256 << 20;

struct Entry {
    bytes: Arc<Vec<u8>>,
    type_id: TypeId,
    value: Arc<dyn Any + Send + Sync>,
}

/// The process's decoded arguments, most recently used last.
static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Argument `index` decoded as a `T`, shared with other calls given the same bytes.
pub(crate) fn decoded<T>(index: usize, bytes: &Arc<Vec<u8>>) -> Result<Arc<T>, CallError>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let decode = || {
        postcard::from_bytes::<T>(bytes)
            .map(Arc::new)
            .map_err(|e| CallError::DecodeArg {
                index,
                message: e.to_string(),
            })
    };
    // Bytes nobody else holds (an argument inlined in one task's spec) cannot be given to
    // another call: nothing to share.
    if bytes.len() < MIN_BYTES || Arc::strong_count(bytes) < 2 {
        return decode();
    }
    let type_id = TypeId::of::<T>();
    let found = {
        let mut entries = ENTRIES.lock().unwrap_or_else(PoisonError::into_inner);
        let at = entries
            .iter()
            .position(|e| Arc::ptr_eq(&e.bytes, bytes) && e.type_id == type_id);
        at.map(|at| {
            let entry = entries.remove(at);
            let value = entry.value.clone();
            entries.push(entry);
            value
        })
    };
    if let Some(value) = found.and_then(|v| v.downcast::<T>().ok()) {
        return Ok(value);
    }
    // Decoded outside the lock: two calls may both decode; the second entry replaces none
    // (lookups find the first) and ages out.
    let value = decode()?;
    let mut entries = ENTRIES.lock().unwrap_or_else(PoisonError::into_inner);
    entries.push(Entry {
        bytes: bytes.clone(),
        type_id,
        value: value.clone(),
    });
    let mut held: usize = entries.iter().map(|e| e.bytes.len()).sum();
    while entries.len() > MAX_ENTRIES || (held > MAX_BYTES && entries.len() > 1) {
        held -= entries.remove(0).bytes.len();
    }
    Ok(value)
}

#[cfg(all(test, not(peer_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_same_shared_bytes_are_decoded_once_per_type() {
        let data: Vec<u64> = (0..5_000).collect();
        let bytes = Arc::new(postcard::to_allocvec(&data).unwrap());
        let held = bytes.clone(); // as a peer's store holds its results
        let a = decoded::<Vec<u64>>(0, &bytes).unwrap();
        let b = decoded::<Vec<u64>>(0, &bytes).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "decoded twice");
        assert_eq!(*a, data);
        // Another type read from the same bytes is its own entry.
        let c = decoded::<Vec<u32>>(0, &bytes);
        assert!(c.is_ok());
        // Equal bytes that are not the same allocation are decoded anew.
        let copy = Arc::new(bytes.to_vec());
        let _also_held = copy.clone();
        let d = decoded::<Vec<u64>>(0, &copy).unwrap();
        assert!(!Arc::ptr_eq(&a, &d));
        assert_eq!(*d, data);
        // Bytes only the call holds are not kept.
        let lone = Arc::new(postcard::to_allocvec(&data).unwrap());
        let e = decoded::<Vec<u64>>(0, &lone).unwrap();
        assert_eq!(*e, data);
        let lone_kept = ENTRIES
            .lock()
            .unwrap()
            .iter()
            .any(|entry| Arc::ptr_eq(&entry.bytes, &lone));
        assert!(!lone_kept);
        drop(held);
    }
}
