//! Sign-in sessions for the HTML pages: a signed, expiring cookie that names an API key.
//!
//! A browser cannot send a Bearer header, so `POST /signin` trades a key with at least the
//! viewer role for the cookie [`COOKIE`], whose value is `1.ID.EXPIRES.MAC`:
//! - `ID` is [`KeyEntry::session_id`], a digest of the key's stored hash (never the key, nor
//!   the hash itself);
//! - `EXPIRES` is the end of the session in seconds since the unix epoch, [`LIFETIME`] after
//!   sign-in;
//! - `MAC` is HMAC-SHA256 over `1.ID.EXPIRES` under the process's [`SessionKey`].
//!
//! Signing out clears the cookie and also remembers its MAC until it would have expired, so a
//! copy of a signed-out cookie opens nothing either.
//!
//! Every request re-checks the cookie against the loaded [`KeyRing`]: a cookie naming a key
//! that is not in the keys file the server runs with, or whose role there does not grant
//! reading results, opens nothing. The keys file is read at start, so revoking a key is
//! removing its line and restarting; since the signing secret is per process (see
//! [`SessionKey`]), the restart also ends every other session, and people sign in again.
//!
//! The cookie opens the pages only: the `/v1` API takes Bearer keys and never reads it, so a
//! cross-site request riding on the cookie can change nothing (no CSRF surface), and
//! `SameSite=Strict` keeps it off cross-site requests altogether. It is `HttpOnly` (no script
//! reads it) and `Secure`: browsers keep it over HTTPS, and on `localhost`/`127.0.0.1`, which
//! they treat as secure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{KeyEntry, KeyRing};

/// The session cookie's name.
pub const COOKIE: &str = "liftlab_session";

/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The format version, the first field of every cookie value.
const VERSION: &str = "1";

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs session cookies.
///
/// It is 256 random bits drawn when the process starts and never written anywhere, rather
/// than derived from the keys file: the keys file holds only hashes and is not treated as a
/// secret (it may sit in configuration management), so a secret derived from it could be
/// recomputed by anyone who can read it, and they could then forge a session for any key.
/// The cost is that a restart signs everyone out, and that replicas behind one address do
/// not honour each other's cookies (route a browser to one replica, or sign in again).
pub struct SessionKey {
    secret: [u8; 32],
    /// Sessions signed out before they expired, by MAC, with their expiry: a copy of a
    /// signed-out cookie opens nothing either.
    ended: Mutex<HashMap<String, u64>>,
}

/// The most signed-out sessions remembered; past it the oldest expiries are forgotten first.
const MAX_ENDED: usize = 100_000;

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A fresh random secret for this process.
    pub fn random() -> SessionKey {
        SessionKey {
            secret: rand::random(),
            ended: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(payload.as_bytes());
        mac
    }

    /// The cookie value of a session for `entry` that starts at `now` (seconds since the epoch).
    pub fn issue(&self, entry: &KeyEntry, now: u64) -> String {
        let expires = now.saturating_add(LIFETIME.as_secs());
        let payload = format!("{VERSION}.{}.{expires}", entry.session_id());
        let tag = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The key a cookie value names, if the value is one this process signed, has not expired
    /// at `now`, and names a key still in `ring`.
    pub fn verify<'a>(&self, value: &str, ring: &'a KeyRing, now: u64) -> Option<&'a KeyEntry> {
        let (payload, tag) = value.rsplit_once('.')?;
        let mut fields = payload.split('.');
        let (Some(VERSION), Some(id), Some(expires), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let tag = hex::decode(tag).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(payload).verify_slice(&tag).ok()?;
        let expires: u64 = expires.parse().ok()?;
        if expires <= now {
            return None;
        }
        if self.ended().contains_key(&hex::encode(&tag)) {
            return None;
        }
        ring.by_session_id(id)
    }

    /// Ends the session of a cookie value this process signed, so that no copy of it opens
    /// anything again; anything else is ignored.
    pub fn end(&self, value: &str, now: u64) {
        let Some((payload, tag)) = value.rsplit_once('.') else {
            return;
        };
        let Some(expires) = payload
            .rsplit('.')
            .next()
            .and_then(|e| e.parse::<u64>().ok())
        else {
            return;
        };
        let signed = hex::decode(tag)
            .ok()
            .is_some_and(|t| self.mac(payload).verify_slice(&t).is_ok());
        if !signed || expires <= now {
            return;
        }
        let mut ended = self.ended();
        ended.retain(|_, until| *until > now);
        if ended.len() >= MAX_ENDED {
            // Forget the sessions closest to expiring on their own.
            let mut expiries: Vec<u64> = ended.values().copied().collect();
            expiries.sort_unstable();
            let cut = expiries[expiries.len() / 2];
            ended.retain(|_, until| *until > cut);
        }
        ended.insert(tag.to_ascii_lowercase(), expires);
    }

    fn ended(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(value: &str) -> String {
    format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The session cookie's value in a `Cookie` request header, if there is one.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Where to go after signing in: `next` when it is a path on this site, else `/`.
///
/// Only a plain absolute path is taken (`/…` of visible ASCII, not `//…` nor `/\…`, which
/// browsers read as another host), so the sign-in form cannot be made to send anyone away.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= 512
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            path
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn ring() -> KeyRing {
        KeyRing::from_entries(vec![
            KeyEntry::for_key(Role::Viewer, "v-key", "dash"),
            KeyEntry::for_key(Role::Admin, "a-key", "root"),
        ])
    }

    #[test]
    fn a_cookie_names_its_key_until_it_expires() {
        let ring = ring();
        let key = SessionKey::random();
        let entry = ring.identify("v-key").expect("listed");
        let value = key.issue(entry, 1_000);
        assert!(
            !value.contains("v-key"),
            "the key itself is never in the cookie"
        );
        assert_eq!(
            key.verify(&value, &ring, 1_000).map(KeyEntry::name),
            Some("dash")
        );
        let end = 1_000 + LIFETIME.as_secs();
        assert!(key.verify(&value, &ring, end - 1).is_some());
        assert!(key.verify(&value, &ring, end).is_none(), "expired");
    }

    #[test]
    fn forged_altered_foreign_and_revoked_cookies_open_nothing() {
        let ring = ring();
        let key = SessionKey::random();
        let viewer = key.issue(ring.identify("v-key").expect("listed"), 1_000);
        let admin_id = ring.identify("a-key").expect("listed").session_id();
        let (payload, tag) = viewer.rsplit_once('.').expect("signed");
        let parts: Vec<&str> = payload.split('.').collect();
        let longer = format!("1.{}.{}.{tag}", parts[1], 9_999_999_999u64);
        let other_key = format!("1.{admin_id}.{}.{tag}", parts[2]);
        let foreign = SessionKey::random().issue(ring.identify("v-key").expect("listed"), 1_000);
        for bad in [
            longer.as_str(),
            other_key.as_str(),
            foreign.as_str(),
            payload,
            "",
            "1.x.y.z",
            "garbage",
            &format!("2.{}", &viewer[2..]),
        ] {
            assert!(key.verify(bad, &ring, 1_000).is_none(), "{bad}");
        }
        // Signed out: the same value opens nothing any more, while other sessions go on.
        let other = key.issue(ring.identify("a-key").expect("listed"), 1_000);
        key.end(&viewer, 1_500);
        assert!(key.verify(&viewer, &ring, 1_600).is_none());
        assert!(key.verify(&other, &ring, 1_600).is_some());
        key.end("garbage", 1_600);
        key.end(&foreign, 1_600);
        assert!(key.verify(&other, &ring, 1_600).is_some());
        // The key left the keys file: its cookie opens nothing any more.
        let without = KeyRing::from_entries(vec![KeyEntry::for_key(Role::Admin, "a-key", "root")]);
        assert!(key.verify(&other, &without, 1_000).is_some());
        let without = KeyRing::from_entries(vec![KeyEntry::for_key(Role::Viewer, "v-key", "dash")]);
        assert!(key.verify(&other, &without, 1_000).is_none());
    }

    #[test]
    fn the_cookie_is_read_from_a_cookie_header() {
        assert_eq!(
            from_cookie_header("a=1; liftlab_session=1.ab.2.cd; b=2"),
            Some("1.ab.2.cd")
        );
        assert_eq!(from_cookie_header("liftlab_session="), None);
        assert_eq!(from_cookie_header("other=1"), None);
        let set = set_cookie("v");
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=43200",
        ] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        for (next, to) in [
            (Some("/experiments/support-ai"), "/experiments/support-ai"),
            (Some("/experiments/x?epoch=1"), "/experiments/x?epoch=1"),
            (Some("/"), "/"),
            (None, "/"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/a b"), "/"),
            (Some("/a\r\nSet-Cookie: x=1"), "/"),
            (Some(""), "/"),
        ] {
            assert_eq!(safe_next(next), to, "{next:?}");
        }
    }
}
