//! Password hashing: argon2id at OWASP's minimum (19 MiB, 2 passes, 1
//! lane) into PHC strings, with the 19 MiB of working memory reused from a
//! small pool instead of allocated per hash.
//!
//! The memory cost can be set (`--password-memory`), for tests and
//! benchmarks that sign in many users. Each hash keeps the parameters it
//! was made with, so any hash still verifies; one made with other
//! parameters than the server's is replaced at the next good sign-in
//! ([`Hasher::is_current`]).
//!
//! Why the pool: a fresh 19 MiB buffer per sign-in is freed into the heap of
//! whichever blocking thread ran it, and glibc keeps it; udpchat-bench saw
//! the server at 913 MiB resident after 1,000 sign-ins. With the pool the
//! hashing memory is at most (concurrent hashes x 19 MiB), allocated once.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;

/// Memory cost in KiB blocks (19 MiB), OWASP's minimum for argon2id.
pub const DEFAULT_MEMORY_KIB: u32 = 19 * 1024;
/// The least memory cost the server accepts.
pub const MIN_MEMORY_KIB: u32 = 64;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

fn argon2(m_cost: u32) -> Argon2<'static> {
    let params =
        Params::new(m_cost, T_COST, P_COST, Some(OUTPUT_LEN)).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and checks passwords; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Hasher {
    scratch: Arc<Mutex<Vec<Vec<Block>>>>,
    m_cost: u32,
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher {
            scratch: Arc::default(),
            m_cost: DEFAULT_MEMORY_KIB,
        }
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// A hasher whose hashes take `kib` KiB of memory (at least
    /// [`MIN_MEMORY_KIB`]).
    pub fn with_memory_kib(kib: u32) -> Result<Hasher, String> {
        if kib < MIN_MEMORY_KIB {
            return Err(format!(
                "password hashing needs at least {MIN_MEMORY_KIB} KiB, not {kib}"
            ));
        }
        Ok(Hasher {
            m_cost: kib,
            ..Hasher::default()
        })
    }

    fn with_memory<T>(&self, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let taken = self.scratch.lock().pop();
        let mut blocks = taken.unwrap_or_else(|| vec![Block::default(); self.m_cost as usize]);
        let result = f(&mut blocks);
        self.scratch.lock().push(blocks);
        result
    }

    fn raw(&self, password: &[u8], salt: &[u8]) -> [u8; OUTPUT_LEN] {
        let mut out = [0u8; OUTPUT_LEN];
        self.with_memory(|blocks| {
            argon2(self.m_cost)
                .hash_password_into_with_memory(password, salt, &mut out, blocks)
                .expect("argon2 with valid parameters and a 16-byte salt")
        });
        out
    }

    /// A salted argon2id PHC string for `password`.
    pub fn hash(&self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        let mut buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut buf).expect("a generated salt decodes");
        let out = self.raw(password.as_bytes(), salt_bytes);
        let output = Output::new(&out).expect("32 bytes is a valid output");
        format!(
            "$argon2id$v=19$m={},t={T_COST},p={P_COST}${}${output}",
            self.m_cost,
            salt.as_str()
        )
    }

    /// Whether `phc` was made the way this hasher makes hashes now (if not,
    /// it should be replaced once the password is known).
    pub fn is_current(&self, phc: &str) -> bool {
        PasswordHash::new(phc).is_ok_and(|hash| self.made_here(&hash))
    }

    fn made_here(&self, hash: &PasswordHash) -> bool {
        hash.algorithm == Algorithm::Argon2id.ident()
            && hash.version == Some(0x13)
            && hash.params.get_decimal("m") == Some(self.m_cost)
            && hash.params.get_decimal("t") == Some(T_COST)
            && hash.params.get_decimal("p") == Some(P_COST)
            && hash.hash.is_some_and(|h| h.len() == OUTPUT_LEN)
    }

    /// Whether `password` matches `phc`. Hashes made with other parameters
    /// (older or stronger) are checked the ordinary way.
    pub fn matches(&self, password: &str, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        if !self.made_here(&hash) {
            return Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok();
        }
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let mut buf = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut buf) else {
            return false;
        };
        let out = self.raw(password.as_bytes(), salt_bytes);
        // Output's equality is constant-time.
        Output::new(&out).is_ok_and(|computed| computed == expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let hasher = Hasher::new();
        let a = hasher.hash("hunter2");
        let b = hasher.hash("hunter2");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(hasher.matches("hunter2", &a));
        assert!(!hasher.matches("hunter3", &a));
        assert!(!a.contains("hunter2"));
        assert!(!hasher.matches("hunter2", "not a hash"));
    }

    #[test]
    fn agrees_with_the_reference_implementation_both_ways() {
        let hasher = Hasher::new();
        let ours = hasher.hash("correct horse");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2(DEFAULT_MEMORY_KIB)
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2(DEFAULT_MEMORY_KIB)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(hasher.matches("battery staple", &theirs));
        assert!(!hasher.matches("battery stapler", &theirs));
        // Other parameters still verify (the ordinary, allocating way).
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let other = weak.hash_password(b"x", &salt).unwrap().to_string();
        assert!(hasher.matches("x", &other));
    }

    #[test]
    fn a_cheaper_hasher_makes_hashes_the_default_one_verifies_and_replaces() {
        let cheap = Hasher::with_memory_kib(MIN_MEMORY_KIB).unwrap();
        let standard = Hasher::new();
        let phc = cheap.hash("pw");
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=2,p=1$"), "{phc}");
        assert!(cheap.is_current(&phc) && cheap.matches("pw", &phc));
        assert!(standard.matches("pw", &phc), "old hashes still verify");
        assert!(!standard.matches("px", &phc));
        assert!(!standard.is_current(&phc), "and are due for replacing");
        assert!(standard.is_current(&standard.hash("pw")));
        assert!(Hasher::with_memory_kib(MIN_MEMORY_KIB - 1).is_err());
    }

    #[test]
    fn the_working_memory_is_reused() {
        let hasher = Hasher::new();
        for _ in 0..3 {
            hasher.hash("again");
        }
        assert_eq!(
            hasher.scratch.lock().len(),
            1,
            "one buffer served every sequential hash"
        );
    }
}
