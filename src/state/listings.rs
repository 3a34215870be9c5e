//! The duplicate check's live listings in the compacted topic `listing-state`.
//!
//! One record per live listing, keyed by listing id, its value the [`LiveListing`] as JSON; a
//! listing that is deleted or found to be a copy gets a tombstone.

use std::sync::Arc;

use super::{Replica, StateRecord};
use crate::checks::duplicates::{LiveListing, StateChange};
use crate::moderator::Moderator;

/// The duplicate state of a worker's moderator, as a topic replicates it.
pub struct Listings(pub Arc<Moderator>);

impl Replica for Listings {
    fn apply(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        match change_of(key, value) {
            Some(change) => {
                self.0.apply_state_changes([change]);
                true
            }
            None => false,
        }
    }
}

/// The topic records of a batch's duplicate-state changes, in order.
pub fn records(changes: &[StateChange]) -> Vec<StateRecord> {
    changes
        .iter()
        .map(|change| match change {
            StateChange::Live(live) => StateRecord {
                key: live.listing.clone(),
                // A plain struct of strings and numbers always serialises.
                value: Some(serde_json::to_vec(live).unwrap_or_default()),
            },
            StateChange::Gone(listing) => StateRecord {
                key: listing.clone(),
                value: None,
            },
        })
        .collect()
}

/// The state change a record holds; `None` for a record that is not one of ours.
fn change_of(key: &[u8], value: Option<&[u8]>) -> Option<StateChange> {
    let listing = std::str::from_utf8(key).ok()?;
    match value {
        None => Some(StateChange::Gone(listing.to_owned())),
        Some(value) => match serde_json::from_slice::<LiveListing>(value) {
            Ok(live) if live.listing == listing => Some(StateChange::Live(live)),
            _ => {
                tracing::debug!(listing, "state record that is no live listing skipped");
                None
            }
        },
    }
}
