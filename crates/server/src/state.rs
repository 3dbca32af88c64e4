//! `AppState`: everything a request handler can reach, built once and shared by every worker.

use std::sync::Arc;

use liftlab_store::{CachedStore, Store};

use crate::auth::KeyRing;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::session::SessionKey;
use crate::Config;

/// Everything a request handler can reach; cheap to clone (every field is an `Arc`).
#[derive(Clone)]
pub struct AppState {
    /// The store, seen through [`CachedStore`]: use it for every read and write, so that the
    /// cached experiment state is dropped whenever an experiment changes.
    pub store: Arc<dyn Store>,
    /// The same store with its cache's own API ([`CachedStore::live`]) for the hot paths.
    pub cache: Arc<CachedStore>,
    pub keys: Arc<KeyRing>,
    /// The secret that signs the pages' session cookies (per process: see [`SessionKey`]).
    pub sessions: Arc<SessionKey>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// The token buckets of [`Config::rate_limit`], shared by every worker.
    pub limiter: Option<Arc<RateLimiter>>,
}

impl AppState {
    /// A state over `store` (wrapped in a [`CachedStore`]) with fresh metrics.
    pub fn new(store: Arc<dyn Store>, keys: KeyRing, config: Config) -> AppState {
        AppState::with_cache(Arc::new(CachedStore::new(store)), keys, config)
    }

    /// A state over a cache built by the caller (e.g. [`CachedStore::with_ttl`] for a
    /// database shared with other replicas).
    pub fn with_cache(cache: Arc<CachedStore>, keys: KeyRing, config: Config) -> AppState {
        AppState {
            store: Arc::clone(&cache) as Arc<dyn Store>,
            cache,
            keys: Arc::new(keys),
            sessions: Arc::new(SessionKey::random()),
            metrics: Arc::new(Metrics::new()),
            limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            config: Arc::new(config),
        }
    }
}
