//! Per-client rate limiting: one token bucket per API key (per client address when the server is open), answering 429 with `Retry-After`.
//!
//! A client is the key a request authenticates with (by its name in the keys file), so one
//! runaway router drains only its own bucket and every other key keeps its full rate. Requests
//! without a recognised key (an open server, a missing or unknown key) are counted per client
//! address instead: IPv4 addresses one by one, IPv6 addresses per /64, since a single host
//! usually holds a whole /64. `X-Forwarded-For` is not trusted, because any client can set it.
//!
//! The [`limit`] middleware runs inside the observability middleware, so a refused request
//! still gets a request id, a log line and a metric. `/healthz` is never limited: load
//! balancers must be able to probe a busy server. The table of buckets is bounded by
//! [`MAX_CLIENTS`]; when it is full, buckets that have refilled completely are dropped (they
//! hold no state worth keeping), and if none has, newcomers share one overflow bucket.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::auth::KeyRing;
use crate::error::{Problem, ProblemCode};
use crate::state::AppState;

/// The most clients that get a bucket of their own.
pub const MAX_CLIENTS: usize = 65_536;

/// A sustained request rate: `requests` per `per` (`100/s`, `6000/m`, `10/h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    requests: NonZeroU32,
    per: Duration,
}

impl Rate {
    /// `requests` per `per`; `None` when `per` is zero.
    pub fn new(requests: NonZeroU32, per: Duration) -> Option<Rate> {
        (!per.is_zero()).then_some(Rate { requests, per })
    }

    pub fn requests(&self) -> NonZeroU32 {
        self.requests
    }

    pub fn per(&self) -> Duration {
        self.per
    }

    /// Tokens added to a bucket per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests.get()) / self.per.as_secs_f64()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_string(),
            60 => "m".to_string(),
            3600 => "h".to_string(),
            _ => format!("{}s", self.per.as_secs_f64()),
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

impl FromStr for Rate {
    type Err = String;

    /// Parses `N/s`, `N/m` or `N/h` (also `N/sec`, `N/min`, `N/hour`), N a positive whole number.
    fn from_str(text: &str) -> Result<Rate, String> {
        let usage = || format!("`{text}` is not a rate like 100/s, 6000/m or 10/h");
        let (count, unit) = text.trim().split_once('/').ok_or_else(usage)?;
        let requests = count.trim().parse::<NonZeroU32>().map_err(|_| usage())?;
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(usage()),
        };
        Ok(Rate { requests, per })
    }
}

/// How fast one client may call the API: a sustained rate and a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    rate: Rate,
    burst: NonZeroU32,
}

impl RateLimit {
    /// A limit of `rate` with room for `burst` requests at once (default: one period's worth).
    pub fn new(rate: Rate, burst: Option<NonZeroU32>) -> RateLimit {
        RateLimit {
            rate,
            burst: burst.unwrap_or(rate.requests),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }
}

/// Whose bucket a request draws from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// An API key, by its name in the keys file.
    Key(String),
    /// A client without a recognised key, by address (IPv6 masked to its /64).
    Addr(IpAddr),
    /// A request whose peer address is unknown (in-process tests, unix sockets).
    Unknown,
    /// Newcomers while the table of buckets is full of active clients.
    Overflow,
}

impl Client {
    /// The client of a request: its key when `authorization` names one of `keys`, else its address.
    pub fn of(keys: &KeyRing, authorization: Option<&str>, peer: Option<IpAddr>) -> Client {
        let token = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(entry) = token.and_then(|t| keys.identify(t)) {
            return Client::Key(entry.name().to_string());
        }
        match peer {
            None => Client::Unknown,
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::Addr(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !(u128::from(u64::MAX));
                    Client::Addr(IpAddr::V6(network.into()))
                }
            },
            Some(v4) => Client::Addr(v4),
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Key(name) => write!(f, "the key `{name}`"),
            Client::Addr(ip) => write!(f, "the client {ip}"),
            Client::Unknown => f.write_str("this client"),
            Client::Overflow => f.write_str("new clients (the server is tracking too many)"),
        }
    }
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused; one request's worth of tokens is back after `retry_after`.
    Deny { retry_after: Duration },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The token buckets of every client, shared by all workers of one server.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    capacity: usize,
    buckets: Mutex<HashMap<Client, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter::with_capacity(limit, MAX_CLIENTS)
    }

    /// A limiter that gives at most `capacity` clients a bucket of their own.
    pub fn with_capacity(limit: RateLimit, capacity: usize) -> RateLimiter {
        RateLimiter {
            limit,
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one token from `client`'s bucket at time `now`, or says how long to wait.
    pub fn check(&self, client: &Client, now: Instant) -> Decision {
        let rate = self.limit.rate.per_second();
        let burst = f64::from(self.limit.burst.get());
        // A poisoned lock only means another thread panicked between two plain float updates;
        // the table is still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refilled = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            (b.tokens + elapsed * rate).min(burst)
        };
        let mut client = client.clone();
        if !buckets.contains_key(&client) && buckets.len() >= self.capacity {
            buckets.retain(|_, b| refilled(b) < burst);
            if buckets.len() >= self.capacity {
                client = Client::Overflow;
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let tokens = refilled(bucket);
        bucket.updated = now.max(bucket.updated);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Decision::Allow
        } else {
            bucket.tokens = tokens;
            Decision::Deny {
                retry_after: Duration::from_secs_f64((1.0 - tokens) / rate),
            }
        }
    }

    /// How many clients hold a bucket now.
    pub fn clients(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// The `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The 429 problem response telling `client` to come back after `wait`.
pub fn too_many_requests(client: &Client, limit: RateLimit, wait: Duration) -> HttpResponse {
    let secs = retry_after_secs(wait);
    let detail = format!(
        "{client} is over its rate limit of {} with bursts of {}; retry after {secs} s",
        limit.rate, limit.burst
    );
    let mut response = Problem::new(ProblemCode::RateLimited, detail, Vec::new()).response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// The middleware; registered once in `app()` with `actix_web::middleware::from_fn`.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let verdict = req
        .app_data::<web::Data<AppState>>()
        .filter(|_| req.path() != "/healthz")
        .and_then(|state| {
            let limiter = state.limiter.as_ref()?;
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let peer = req.peer_addr().map(|a| a.ip());
            let client = Client::of(&state.keys, authorization, peer);
            match limiter.check(&client, Instant::now()) {
                Decision::Allow => None,
                Decision::Deny { retry_after } => {
                    Some(too_many_requests(&client, limiter.limit(), retry_after))
                }
            }
        });
    match verdict {
        Some(refusal) => Ok(req.into_response(refusal)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{KeyEntry, Role};
    use crate::error::PROBLEM_JSON;
    use actix_web::http::StatusCode;

    fn limit(text: &str, burst: u32) -> RateLimit {
        RateLimit::new(
            text.parse().expect("a valid rate"),
            Some(NonZeroU32::new(burst).expect("positive")),
        )
    }

    fn allowed(d: Decision) -> bool {
        matches!(d, Decision::Allow)
    }

    #[test]
    fn rates_parse_with_their_unit() {
        let r: Rate = "100/s".parse().expect("valid");
        assert_eq!((r.requests().get(), r.per()), (100, Duration::from_secs(1)));
        let r: Rate = " 6000 / min ".parse().expect("valid");
        assert_eq!(
            (r.requests().get(), r.per()),
            (6000, Duration::from_secs(60))
        );
        let r: Rate = "10/h".parse().expect("valid");
        assert!((r.per_second() - 10.0 / 3600.0).abs() < 1e-12);
        assert_eq!(r.to_string(), "10/h");
        for bad in ["", "100", "0/s", "-1/s", "1.5/s", "10/d", "/s", "ten/s"] {
            let err = bad.parse::<Rate>().expect_err(bad);
            assert!(err.contains("is not a rate"), "{err}");
            assert!(!err.ends_with('.'), "{err}");
        }
        assert!(Rate::new(NonZeroU32::MIN, Duration::ZERO).is_none());
    }

    #[test]
    fn the_burst_defaults_to_one_period() {
        let l = RateLimit::new("7/s".parse().expect("valid"), None);
        assert_eq!(l.burst().get(), 7);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_until_it_refills() {
        let limiter = RateLimiter::new(limit("2/s", 3));
        let t0 = Instant::now();
        let c = Client::Key("router".into());
        let decisions: Vec<Decision> = (0..4).map(|_| limiter.check(&c, t0)).collect();
        assert!(decisions[..3].iter().all(|d| allowed(*d)), "{decisions:?}");
        let Decision::Deny { retry_after } = decisions[3] else {
            panic!("the fourth request at once is refused: {decisions:?}")
        };
        // Two tokens a second: one token takes half a second.
        assert!(
            (retry_after.as_secs_f64() - 0.5).abs() < 1e-9,
            "{retry_after:?}"
        );
        assert!(!allowed(limiter.check(&c, t0 + Duration::from_millis(499))));
        assert!(allowed(limiter.check(&c, t0 + Duration::from_millis(1000))));
        // After a long pause the bucket holds its burst, not more.
        let later = t0 + Duration::from_secs(3600);
        let allowed_later = (0..10)
            .filter(|_| allowed(limiter.check(&c, later)))
            .count();
        assert_eq!(allowed_later, 3);
    }

    #[test]
    fn the_sustained_rate_is_the_configured_one() {
        let limiter = RateLimiter::new(limit("10/s", 1));
        let t0 = Instant::now();
        let c = Client::Unknown;
        // A client hammering every millisecond for ten seconds gets 1 + 10 per second.
        let ok = (0..10_000u64)
            .filter(|ms| allowed(limiter.check(&c, t0 + Duration::from_millis(*ms))))
            .count();
        assert!((100..=101).contains(&ok), "{ok}");
    }

    #[test]
    fn one_runaway_client_does_not_drain_another() {
        let limiter = RateLimiter::new(limit("1/h", 5));
        let t0 = Instant::now();
        let runaway = Client::Key("runaway".into());
        let calm = Client::Key("calm".into());
        let runaway_ok = (0..100)
            .filter(|_| allowed(limiter.check(&runaway, t0)))
            .count();
        assert_eq!(runaway_ok, 5);
        let calm_ok = (0..5).filter(|_| allowed(limiter.check(&calm, t0))).count();
        assert_eq!(calm_ok, 5);
    }

    #[test]
    fn time_going_backwards_grants_nothing() {
        let limiter = RateLimiter::new(limit("1/s", 1));
        let t0 = Instant::now() + Duration::from_secs(10);
        let c = Client::Unknown;
        assert!(allowed(limiter.check(&c, t0)));
        assert!(!allowed(limiter.check(&c, t0 - Duration::from_secs(5))));
        assert!(!allowed(limiter.check(&c, t0)));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_refilled_buckets() {
        let limiter = RateLimiter::with_capacity(limit("1/s", 1), 3);
        let t0 = Instant::now();
        for i in 0..3u8 {
            assert!(allowed(limiter.check(&Client::Key(i.to_string()), t0)));
        }
        // A fourth client while all three buckets are drained shares the overflow bucket.
        assert!(allowed(limiter.check(&Client::Key("x".into()), t0)));
        assert!(!allowed(limiter.check(&Client::Key("y".into()), t0)));
        assert_eq!(limiter.clients(), 4);
        // Once the others have refilled, they are dropped to make room.
        let later = t0 + Duration::from_secs(5);
        assert!(allowed(limiter.check(&Client::Key("y".into()), later)));
        assert!(limiter.clients() <= 3, "{}", limiter.clients());
    }

    #[test]
    fn clients_are_keys_when_recognised_and_addresses_otherwise() {
        let keys = KeyRing::from_entries(vec![KeyEntry::for_key(Role::Router, "k1", "claims")]);
        let v4: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            Client::of(&keys, Some("Bearer k1"), Some(v4)),
            Client::Key("claims".into())
        );
        assert_eq!(
            Client::of(&keys, Some("Bearer nope"), Some(v4)),
            Client::Addr(v4)
        );
        assert_eq!(Client::of(&keys, None, None), Client::Unknown);
        assert_eq!(
            Client::of(&KeyRing::open(), Some("Bearer k1"), Some(v4)),
            Client::Addr(v4)
        );
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
        assert_eq!(
            Client::of(&keys, None, Some(a)),
            Client::of(&keys, None, Some(b))
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            Client::of(&keys, None, Some(mapped)),
            Client::Addr("10.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn the_refusal_is_a_problem_with_retry_after() {
        let res = too_many_requests(
            &Client::Key("claims".into()),
            limit("100/s", 200),
            Duration::from_millis(10),
        );
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(PROBLEM_JSON)
        );
    }
}
