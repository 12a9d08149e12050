//! Telling members their groups changed: the listing pushed to those
//! signed in here, and the word passed to the node of those signed in on
//! another.

use std::sync::Arc;

use udpchat_commands::groups::{Groups as GroupsPush, Listing};
use udpchat_core::context::PeerId;
use udpchat_core::group::GroupInfo;
use udpchat_core::packet::Encoded;

use super::delivery::Live;
use super::{Inner, Later};
use crate::store::blocking;

impl Inner {
    /// Pushes a user their groups; nothing waits for it.
    pub(super) fn show_groups(&self, peer: PeerId, listing: &Listing) {
        let delivery = self.link.push(peer, Encoded::push::<GroupsPush>(listing));
        tokio::spawn(async move {
            if let Err(e) = delivery.await {
                tracing::debug!(%peer, "groups not shown: {e}");
            }
        });
    }

    /// Tells an online user their groups changed, with why; a user signed
    /// in on another server node is told by that node. One this node has
    /// not heard of is told by whichever node holds them, if any: they may
    /// have signed in there a moment ago, before this node heard (as mail
    /// is handed over).
    pub(super) async fn tell(&self, user: &str, note: String) {
        let Some(peer) = self.online(user) else {
            if let Some(elsewhere) = &self.elsewhere {
                let there = self.presence.lock().elsewhere(user).map(|e| e.node.clone());
                elsewhere.tell(
                    there.as_deref().unwrap_or(crate::cluster::ANY_NODE),
                    user,
                    note,
                );
            }
            return;
        };
        let (store, name) = (self.store.clone(), user.to_string());
        match blocking(move || store.groups_of(&name)).await {
            Ok(groups) => {
                let listing = Listing {
                    groups,
                    note: Some(note),
                };
                self.show_groups(peer, &listing);
            }
            Err(e) => tracing::warn!(user, "groups: not told: {}", e.message),
        }
    }

    /// After members were added: attach those online; tell them (but not
    /// `by`, who did it) why.
    pub(super) async fn added(
        self: &Arc<Self>,
        live: &mut Live,
        info: &GroupInfo,
        added: &[String],
        by: &str,
        later: Later,
    ) {
        for user in added {
            if let Some(peer) = self.online(user) {
                if let Err(e) = self.attach(live, &info.name, user, peer, None).await {
                    tracing::warn!(user, "groups: not attached: {}", e.message);
                }
            }
            // Online here, or on another node (which attaches them when
            // the group's first message comes).
            if user != by {
                let mut note = format!("{by} added you to {}", info.name);
                if later == Later::Yes && info.private {
                    note.push_str(&format!(" ({})", udpchat_commands::private::JOINED_NOTE));
                }
                self.tell(user, note).await;
            }
        }
    }

    pub(super) async fn removed(&self, live: &mut Live, group: &str, removed: &[String], by: &str) {
        for user in removed {
            live.attached.remove(user);
            self.forget(group, user);
            if user != by {
                self.tell(user, format!("{by} removed you from {group}"))
                    .await;
            }
        }
    }
}
