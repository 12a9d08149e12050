//! Failed sign-ins and sign-ups counted in PostgreSQL, for several server
//! nodes: each node asks the same rows, so guessing spread over nodes is
//! slowed as on one, and one address makes as many accounts an hour in
//! all as it could on one node. The waits are [`super::throttle`]'s.

use std::time::Duration;

use super::throttle::{shared_check, Wait, FORGET_FAILURES_AFTER};
use crate::store::{Cached as _, PgStore, StoreError};

/// The rows' keys for `user` tried from `source`: the account from this
/// source, and the source.
fn keys(user: &str, source: &str) -> [String; 2] {
    [
        format!("account {source} {user}"),
        format!("source {source}"),
    ]
}

impl PgStore {
    /// Ok when `user` may be tried from `source` now; otherwise how long
    /// until it may.
    pub fn sign_in_allowed(
        &self,
        user: &str,
        source: &str,
    ) -> Result<Result<(), Wait>, StoreError> {
        let keys = keys(user, source);
        self.run(async {
            let rows = self
                .query(
                    "SELECT key, failures, extract(epoch FROM now() - last_at)::float8
                     FROM sign_in_failures WHERE key = ANY($1)",
                    &[&keys.as_slice()],
                )
                .await?;
            let of = |key: &str| {
                rows.iter().find(|r| r.get::<_, &str>(0) == key).map(|r| {
                    let since = r.get::<_, f64>(2).max(0.0);
                    (r.get::<_, i32>(1) as u32, Duration::from_secs_f64(since))
                })
            };
            Ok(shared_check(of(&keys[0]), of(&keys[1])))
        })
    }

    /// A failed sign-in at `user` from `source`.
    pub fn sign_in_failed(&self, user: &str, source: &str) -> Result<(), StoreError> {
        let keys = keys(user, source);
        let forget = FORGET_FAILURES_AFTER.as_secs_f64();
        self.run(async {
            self.execute(
                "INSERT INTO sign_in_failures (key, failures)
                     SELECT k, 1 FROM unnest($1::text[]) AS k
                     ON CONFLICT (key) DO UPDATE SET
                         failures = CASE
                             WHEN sign_in_failures.last_at < now() - make_interval(secs => $2)
                             THEN 1 ELSE sign_in_failures.failures + 1 END,
                         last_at = now()",
                &[&keys.as_slice(), &forget],
            )
            .await?;
            Ok(())
        })
    }

    /// A right password: this source's failures at this account are
    /// forgiven (not its failures elsewhere).
    pub fn sign_in_succeeded(&self, user: &str, source: &str) -> Result<(), StoreError> {
        let [account, _] = keys(user, source);
        self.run(async {
            self.execute("DELETE FROM sign_in_failures WHERE key = $1", &[&account])
                .await?;
            Ok(())
        })
    }

    /// Takes one of `per_hour` sign-ups an hour for `source`: Ok, or how
    /// long until the oldest of the last hour's is an hour old.
    pub fn take_sign_up(
        &self,
        source: &str,
        per_hour: u32,
    ) -> Result<Result<(), Duration>, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // One source's sign-ups are counted one at a time.
            tx.cached_execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&source])
                .await?;
            let row = tx
                .cached_query_one(
                    "SELECT count(*),
                            coalesce(extract(epoch FROM min(at) + interval '1 hour' - now()), 0)::float8
                     FROM sign_ups WHERE source = $1 AND at > now() - interval '1 hour'",
                    &[&source],
                )
                .await?;
            if row.get::<_, i64>(0) >= i64::from(per_hour) {
                let wait = Duration::from_secs_f64(row.get::<_, f64>(1).max(1.0));
                return Ok(Err(wait));
            }
            tx.cached_execute("INSERT INTO sign_ups (source) VALUES ($1)", &[&source])
                .await?;
            tx.commit().await?;
            Ok(Ok(()))
        })
    }

    /// Forgets failures and sign-ups too old to count.
    pub fn forget_old_attempts(&self) -> Result<(), StoreError> {
        let forget = FORGET_FAILURES_AFTER.as_secs_f64();
        self.run(async {
            let client = self.client().await?;
            client
                .cached_execute(
                    "DELETE FROM sign_in_failures WHERE last_at < now() - make_interval(secs => $1)",
                    &[&forget],
                )
                .await?;
            client
                .cached_execute(
                    "DELETE FROM sign_ups WHERE at < now() - interval '1 hour'",
                    &[],
                )
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::postgres;

    #[test]
    fn failures_on_one_node_slow_guessing_on_another_and_a_right_password_forgives() {
        let Some(db) = postgres() else {
            return;
        };
        let (one, two) = (&db.store, &db.another_node());
        for _ in 0..3 {
            assert!(one.sign_in_allowed("alice", "10.0.0.9").unwrap().is_ok());
            one.sign_in_failed("alice", "10.0.0.9").unwrap();
        }
        // Three failures are free; the fourth made on node one makes node
        // two wait.
        one.sign_in_failed("alice", "10.0.0.9").unwrap();
        assert!(two.sign_in_allowed("alice", "10.0.0.9").unwrap().is_err());
        // Another source (alice herself) is not affected.
        assert!(two.sign_in_allowed("alice", "10.0.0.1").unwrap().is_ok());
        // A right password from that source forgives it at that account.
        two.sign_in_succeeded("alice", "10.0.0.9").unwrap();
        assert!(one.sign_in_allowed("alice", "10.0.0.9").unwrap().is_ok());
    }

    #[test]
    fn sign_ups_from_one_source_are_counted_across_nodes() {
        let Some(db) = postgres() else {
            return;
        };
        let (one, two) = (&db.store, &db.another_node());
        assert!(one.take_sign_up("10.0.0.9", 2).unwrap().is_ok());
        assert!(two.take_sign_up("10.0.0.9", 2).unwrap().is_ok());
        let wait = one.take_sign_up("10.0.0.9", 2).unwrap().unwrap_err();
        assert!(wait > std::time::Duration::from_secs(3000), "{wait:?}");
        assert!(
            two.take_sign_up("10.0.0.8", 2).unwrap().is_ok(),
            "another source"
        );
    }
}
