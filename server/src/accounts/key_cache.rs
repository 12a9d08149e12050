//! Identity keys that `lookup` asked for lately, decoded: the next `lookup`
//! of the same user answers from here, without a store read or a P-384
//! point decoding.
//!
//! Only keys read are kept. A key written (a sign-up, a sign-in from a new
//! device) replaces the one kept, if one is, and is not kept otherwise: an
//! idle user nobody looks up costs no memory here (about 200 bytes each;
//! at 10,000 idle clients that was a tenth of what each cost the server).
//! The first `lookup` of a user then reads the store once.
//!
//! A read races the writes: it may have read a key from the store just
//! before a write replaced it there. Every write counts ([`KeyCache::wrote`]),
//! and a read keeps what it found only if no write came since it began
//! ([`KeyCache::reading`], [`KeyCache::read`]), so an older key is never
//! put back.

use std::collections::HashMap;

use udpchat_core::crypto::keys::PublicKey;

/// Keys kept at most; past it the cache starts again empty.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub(super) struct KeyCache {
    keys: HashMap<String, PublicKey>,
    /// Writes (and keys forgotten) so far.
    writes: u64,
}

/// A store read begun: what [`KeyCache::read`] needs to know whether a write
/// came while it ran.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    writes: u64,
}

impl KeyCache {
    pub fn get(&self, user: &str) -> Option<&PublicKey> {
        self.keys.get(user)
    }

    /// Notes a store read of a key about to begin.
    pub fn reading(&self) -> Reading {
        Reading {
            writes: self.writes,
        }
    }

    /// Keeps `key`, read from the store for `user`, unless a write came
    /// since `began`.
    pub fn read(&mut self, began: Reading, user: &str, key: PublicKey) {
        if began.writes != self.writes {
            return;
        }
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(user) {
            self.keys.clear();
        }
        self.keys.insert(user.to_string(), key);
    }

    /// `user`'s key is now `key` in the store: the one kept, if any, is
    /// replaced.
    pub fn wrote(&mut self, user: &str, key: PublicKey) {
        self.writes += 1;
        if let Some(kept) = self.keys.get_mut(user) {
            *kept = key;
        }
    }

    /// `user`'s key may have changed where this server did not see it (on
    /// another node).
    pub fn forget(&mut self, user: &str) {
        self.writes += 1;
        self.keys.remove(user);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::crypto::keys::StaticKey;

    fn key() -> PublicKey {
        StaticKey::generate(&mut rand::thread_rng()).public()
    }

    #[test]
    fn a_key_written_is_kept_only_once_it_was_read() {
        let mut cache = KeyCache::default();
        let (first, second) = (key(), key());
        cache.wrote("bob", first.clone());
        assert_eq!(cache.len(), 0, "a key nobody asked for is not held");
        let began = cache.reading();
        cache.read(began, "bob", first);
        cache.wrote("bob", second.clone());
        assert_eq!(
            cache.get("bob"),
            Some(&second),
            "a write replaces the key kept"
        );
    }

    #[test]
    fn a_read_that_a_write_overtook_keeps_nothing() {
        let mut cache = KeyCache::default();
        let (old, new) = (key(), key());
        let began = cache.reading();
        // The store answered the read with the old key; meanwhile the new
        // one was written.
        cache.wrote("bob", new);
        cache.read(began, "bob", old.clone());
        assert_eq!(cache.get("bob"), None, "the older key came back");
        let began = cache.reading();
        cache.forget("bob");
        cache.read(began, "bob", old);
        assert_eq!(cache.get("bob"), None, "a key forgotten came back");
    }
}
