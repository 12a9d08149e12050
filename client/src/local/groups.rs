//! Private groups' sender keys on this client ([`PrivateGroups`]): the
//! chains others handed the signed-in user are kept in their file.

use rusqlite::{params, Connection};
use udpchat_core::cbor;
use udpchat_core::context::PrivateGroups;
use udpchat_core::crypto::sender_keys::ReceivedChain;
use udpchat_core::error::CommandError;
use udpchat_core::group_keys::{GroupKeys, Member};

use super::{internal, LocalStore, Opened};

impl Opened {
    /// Writes what changed in the keys.
    fn save_keys(&mut self) -> rusqlite::Result<()> {
        let changed = self.keys.take_changed();
        let forgotten = self.keys.take_forgotten();
        if changed.is_empty() && forgotten.is_empty() {
            return Ok(());
        }
        let mut db = self.files.db.lock();
        let tx = db.transaction()?;
        for group in forgotten {
            tx.execute(
                "DELETE FROM received_chains WHERE group_name = ?1",
                [&group],
            )?;
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO received_chains (group_name, sender, chains) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_name, sender) DO UPDATE SET chains = excluded.chains",
            )?;
            for ((group, sender), chains) in changed {
                upsert.execute(params![group, sender, cbor::encode(&chains)])?;
            }
        }
        tx.commit()
    }
}

/// Every chain kept; a row that does not decode is skipped (its sender's
/// next handout replaces it).
pub(super) fn read_chains(db: &Connection) -> rusqlite::Result<Vec<(Member, Vec<ReceivedChain>)>> {
    let mut query = db.prepare("SELECT group_name, sender, chains FROM received_chains")?;
    let rows = query.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut kept = Vec::new();
    for row in rows {
        let (group, sender, bytes) = row?;
        match cbor::decode_body::<Vec<ReceivedChain>>(&bytes) {
            Ok(chains) => kept.push(((group, sender), chains)),
            Err(e) => tracing::warn!(group, sender, "group keys: a kept chain does not read: {e}"),
        }
    }
    Ok(kept)
}

impl PrivateGroups for LocalStore {
    fn give_up_held(&self) -> Vec<(Member, usize)> {
        self.open
            .lock()
            .as_mut()
            .map(|open| open.keys.take_held())
            .unwrap_or_default()
    }

    fn reader(&self) -> Option<String> {
        LocalStore::reader(self)
    }

    fn with_keys(&self, f: &mut dyn FnMut(&mut GroupKeys)) -> Result<(), CommandError> {
        self.with_open(|open| {
            f(&mut open.keys);
            open.save_keys().map_err(internal)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use udpchat_core::context::Session;

    use super::*;

    fn printer() -> crate::render::Printer {
        crate::render::Printer::new(crate::render::Format::Json).0
    }

    #[test]
    fn keys_are_kept_across_a_restart_in_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let session = Arc::new(Mutex::new(Session {
            server: "127.0.0.1:9".parse().unwrap(),
            user: Some("alice".into()),
            conversation: None,
        }));
        let store = LocalStore::new(dir.path().to_path_buf(), session.clone(), printer());
        let share =
            udpchat_core::crypto::sender_keys::OwnChain::generate(&mut rand::thread_rng()).share();
        let groups: &dyn PrivateGroups = &store;
        let new = groups
            .keys(|k| k.accept("g", "bob", &share).unwrap())
            .unwrap();
        assert!(new, "a chain not seen before");
        drop(store);

        let again = LocalStore::new(dir.path().to_path_buf(), session, printer());
        let groups: &dyn PrivateGroups = &again;
        let known = groups
            .keys(|k| k.accept("g", "bob", &share).unwrap())
            .unwrap();
        assert!(!known, "the chain bob handed out was kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("users/alice").join(super::super::FILE);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
