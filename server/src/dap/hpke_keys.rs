//! A DAP task's HPKE key pairs and their rotation (DAP-09 section 4.5.1).
//!
//! Each aggregator holds its own key pairs for a task, stored sealed in
//! `dap_hpke_keys` (migration 0009). Exactly one is *active*: it is the
//! configuration `GET /dap/hpke_config?task_id=` serves. Rotating
//! (`POST /dap/tasks/{id}/hpke_configs`, admin) makes a new active key pair
//! and gives the previous ones an expiry: until then they still open the
//! reports that clients encrypted to them; afterwards they are deleted and
//! a report naming their config id is answered `outdatedConfig`, which
//! tells a DAP client to fetch `hpke_config` again and re-encrypt.
//!
//! **Default grace period: 8 days** ([`DEFAULT_HPKE_GRACE_SECS`]) = the
//! default report expiry age (7 days) + the `Cache-Control: max-age` of the
//! `hpke_config` answer (1 day). A client may use a configuration it
//! fetched just before a rotation for up to max-age, stamping its reports
//! with that time at the latest, and the leader accepts such a report until
//! it is a report expiry age old. So within the default grace no report the
//! leader would still accept is refused for its config; past it, every
//! report encrypted to the old configuration is refused as expired anyway.
//! A task with a longer report expiry age wants a longer grace
//! (`--hpke-grace-secs`).
//!
//! Key sets are cached per task for [`CACHE_TTL`]; a report naming a config
//! id the cached set lacks reloads it (at most once per [`MIN_RELOAD`] per
//! task), so a rotation made on another replica is picked up by the first
//! upload that uses it (one [`MIN_RELOAD`] after the last read at most),
//! and within [`CACHE_TTL`] by `hpke_config`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hetally_dap::janus_core::hpke::HpkeKeypair;
use hetally_dap::messages::{HpkeConfig, HpkeConfigId, TaskId};
use serde::{Deserialize, Serialize};

/// Default time rotated-out HPKE configurations keep decrypting: 8 days
/// (module docs).
pub const DEFAULT_HPKE_GRACE_SECS: u64 = 8 * 24 * 3600;

/// How long a task's cached key set is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// Least time between two reloads of one task's key set caused by unknown
/// config ids (a client sending random ids cannot make every upload read
/// the database).
pub const MIN_RELOAD: Duration = Duration::from_secs(1);

/// One stored HPKE key pair of a task.
pub struct HpkeKey {
    /// The key pair (secret).
    pub keypair: HpkeKeypair,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// None while active; else the time from which it no longer decrypts.
    pub expires_at: Option<u64>,
}

impl fmt::Debug for HpkeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HpkeKey")
            .field("config_id", &u8::from(*self.keypair.config().id()))
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A task's HPKE key pairs: the active one first, then the others newest
/// first.
#[derive(Debug)]
pub struct HpkeKeySet {
    keys: Vec<HpkeKey>,
}

impl HpkeKeySet {
    /// The set of `keys`.
    pub fn new(mut keys: Vec<HpkeKey>) -> Self {
        keys.sort_by_key(|k| {
            (
                k.expires_at.is_some(),
                std::cmp::Reverse(k.created_at),
                std::cmp::Reverse(k.expires_at),
            )
        });
        HpkeKeySet { keys }
    }

    /// The active key pair: the one `hpke_config` serves and new reports
    /// should use. None only for a task whose keys were all retired.
    pub fn active(&self) -> Option<&HpkeKeypair> {
        self.keys
            .first()
            .filter(|k| k.expires_at.is_none())
            .map(|k| &k.keypair)
    }

    /// The key pair of config `id`, if it still decrypts at `now`.
    pub fn get(&self, id: &HpkeConfigId, now: u64) -> Option<&HpkeKeypair> {
        self.keys
            .iter()
            .find(|k| k.keypair.config().id() == id && k.expires_at.is_none_or(|e| now < e))
            .map(|k| &k.keypair)
    }

    /// Every stored key, active first.
    pub fn keys(&self) -> &[HpkeKey] {
        &self.keys
    }
}

/// Body of `POST /dap/tasks/{id}/hpke_configs` (admin token; the body may
/// be empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Seconds the previous configurations keep decrypting; default the
    /// server's grace period (`--hpke-grace-secs`); 0: they are unknown at
    /// once.
    #[serde(default)]
    pub retire_previous_after_secs: Option<u64>,
}

/// What `POST /dap/tasks/{id}/hpke_configs` answers (201).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateResponse {
    /// Task id.
    pub task_id: String,
    /// The new active configuration: unpadded base64url of its DAP
    /// encoding, as `hpke_config` serves it (in a list).
    pub hpke_config: String,
    /// Its config id.
    pub config_id: u8,
    /// The configurations that still decrypt, and until when.
    pub previous: Vec<RetiringConfig>,
}

/// A rotated-out configuration that still decrypts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiringConfig {
    /// Its config id.
    pub config_id: u8,
    /// Unix seconds from which it no longer decrypts.
    pub expires_at: u64,
}

/// The new active configuration a rotation made, with the set after it.
#[derive(Debug)]
pub struct Rotation {
    /// The new configuration.
    pub config: HpkeConfig,
    /// The task's keys after the rotation.
    pub keys: Arc<HpkeKeySet>,
}

/// The per-task cache of key sets (module docs).
#[derive(Debug, Default)]
pub(crate) struct HpkeKeyCache {
    entries: RwLock<HashMap<TaskId, (Arc<HpkeKeySet>, Instant)>>,
}

impl HpkeKeyCache {
    /// The cached set of `task_id` and when it was loaded.
    pub(crate) fn get(&self, task_id: &TaskId) -> Option<(Arc<HpkeKeySet>, Instant)> {
        // A poisoned lock only means a panic elsewhere while inserting; the
        // map itself is still consistent.
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(task_id)
            .cloned()
    }

    /// Caches `set`, loaded at `loaded`, unless a newer load is cached.
    pub(crate) fn put(&self, task_id: TaskId, set: Arc<HpkeKeySet>, loaded: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match entries.get(&task_id) {
            Some((_, at)) if *at > loaded => {}
            _ => {
                entries.insert(task_id, (set, loaded));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetally_dap::hpke::generate_keypair;

    fn key(id: u8, created_at: u64, expires_at: Option<u64>) -> HpkeKey {
        HpkeKey {
            keypair: generate_keypair(id).unwrap(),
            created_at,
            expires_at,
        }
    }

    #[test]
    fn active_first_and_expiry_is_exclusive() {
        let set = HpkeKeySet::new(vec![key(1, 10, Some(100)), key(2, 20, None)]);
        assert_eq!(u8::from(*set.active().unwrap().config().id()), 2);
        let one = HpkeConfigId::from(1);
        assert!(set.get(&one, 99).is_some());
        assert!(set.get(&one, 100).is_none());
        assert!(set.get(&HpkeConfigId::from(3), 0).is_none());
        let retired = HpkeKeySet::new(vec![key(1, 10, Some(100))]);
        assert!(retired.active().is_none());
        assert!(!format!("{:?}", set.keys()[0]).contains("private"));
    }
}
