//! Presence: who is signed in now and on which session. Memory only; the
//! server owns one behind a lock.

use std::collections::{BTreeMap, HashMap};

use crate::secure::PeerId;

/// Someone signed in or went offline, as the server tells the others.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceChange {
    pub user: String,
    pub online: bool,
}

/// The signed-in users, by name and by address (one name per address).
#[derive(Debug, Default)]
pub struct Presence {
    by_name: BTreeMap<String, PeerId>,
    by_addr: HashMap<PeerId, String>,
}

/// What a sign-in would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name is free (or already this address's): go ahead.
    Free,
    /// The name is signed in from another address.
    HeldBy(PeerId),
}

impl Presence {
    pub fn new() -> Presence {
        Presence::default()
    }

    /// Whether `name` may be signed in from `addr` without displacing anyone.
    pub fn claim(&self, name: &str, addr: PeerId) -> Claim {
        match self.by_name.get(name) {
            Some(&held) if held != addr => Claim::HeldBy(held),
            _ => Claim::Free,
        }
    }

    /// Signs `name` in at `addr`, displacing whatever held either. Returns
    /// the names that were signed out by it (not `name` itself).
    pub fn sign_in(&mut self, name: &str, addr: PeerId) -> Vec<String> {
        let mut displaced = Vec::new();
        if let Some(old_addr) = self.by_name.remove(name) {
            self.by_addr.remove(&old_addr);
        }
        if let Some(old_name) = self.by_addr.remove(&addr) {
            if old_name != name {
                self.by_name.remove(&old_name);
                displaced.push(old_name);
            }
        }
        self.by_name.insert(name.to_string(), addr);
        self.by_addr.insert(addr, name.to_string());
        displaced
    }

    /// Signs out whoever is at `addr`; returns the name.
    pub fn sign_out(&mut self, addr: PeerId) -> Option<String> {
        let name = self.by_addr.remove(&addr)?;
        self.by_name.remove(&name);
        Some(name)
    }

    /// The name signed in at `addr`.
    pub fn user_at(&self, addr: PeerId) -> Option<&str> {
        self.by_addr.get(&addr).map(String::as_str)
    }

    /// Where `name` is signed in.
    pub fn addr_of(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// Every signed-in name, sorted.
    pub fn users(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Every signed-in address.
    pub fn peers(&self) -> Vec<PeerId> {
        self.by_name.values().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(index: u32) -> PeerId {
        PeerId(index)
    }

    #[test]
    fn one_name_per_address_and_one_address_per_name() {
        let mut p = Presence::new();
        assert!(p.sign_in("alice", addr(1)).is_empty());
        assert_eq!(p.claim("alice", addr(2)), Claim::HeldBy(addr(1)));
        assert_eq!(p.claim("alice", addr(1)), Claim::Free);
        // The same client signing in under another name leaves the old one.
        assert_eq!(p.sign_in("alicia", addr(1)), vec!["alice".to_string()]);
        assert_eq!(p.users(), vec!["alicia"]);
        // Taking a name over moves it.
        p.sign_in("alicia", addr(3));
        assert_eq!(p.addr_of("alicia"), Some(addr(3)));
        assert_eq!(p.user_at(addr(1)), None);
        assert_eq!(p.sign_out(addr(3)).as_deref(), Some("alicia"));
        assert!(p.is_empty());
    }
}
