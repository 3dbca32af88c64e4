//! API keys and roles: the keys file, bearer-token checks, and the guard extractors handlers take.
//!
//! A keys file holds one key a line, `ROLE SHA256_HEX NAME`; the key itself is never stored.
//! Handlers declare what they need by taking a guard ([`Reader`], [`Viewer`], [`Router`],
//! [`Scientist`], [`Admin`]) as an argument: the guard's extractor hashes the bearer token,
//! compares it in constant time against every stored hash and checks the role, so no handler
//! contains auth code. Without a keys file the server is open (loopback only) and every guard
//! passes as the anonymous admin. The HTML pages take [`PageViewer`] instead, which also
//! admits a signed-in browser's session cookie ([`crate::session`]); the API never reads it.

use std::fmt;
use std::future::{ready, Ready};
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// What a key may do, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads experiments, results, pages and the audit log.
    Viewer,
    /// Assigns units, posts outcomes and reads experiments.
    Router,
    /// Everything a viewer and a router may do, plus defining and controlling experiments.
    Scientist,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Router, Role::Scientist, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Router => "router",
            Role::Scientist => "scientist",
            Role::Admin => "admin",
        }
    }

    /// Whether this role grants `capability`.
    pub fn grants(self, capability: Capability) -> bool {
        use Capability as C;
        match self {
            Role::Admin | Role::Scientist => capability != C::Administer || self == Role::Admin,
            Role::Viewer => matches!(capability, C::ReadExperiments | C::ReadResults),
            Role::Router => matches!(capability, C::ReadExperiments | C::Route),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}` (expected viewer, router, scientist or admin)")
            })
    }
}

/// A group of operations that roles grant; each guard extractor demands one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// List and read experiments and their versions.
    ReadExperiments,
    /// Read results, result pages, the audit log and metrics.
    ReadResults,
    /// Assign units and record outcomes.
    Route,
    /// Create, change and control experiments.
    Define,
    /// Operations reserved for administrators.
    Administer,
}

impl Capability {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Capability::ReadExperiments => "read experiments",
            Capability::ReadResults => "read results and audit data",
            Capability::Route => "assign units and record outcomes",
            Capability::Define => "define and control experiments",
            Capability::Administer => "administer liftlab",
        }
    }
}

/// One line of the keys file.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    role: Role,
    hash: [u8; 32],
    name: String,
}

impl fmt::Debug for KeyEntry {
    // The hash is not secret, but there is no reason to print it either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("role", &self.role)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KeyEntry {
    /// An entry for `key`, hashing it; used by `liftlab keys new` and by tests.
    pub fn for_key(role: Role, key: &str, name: &str) -> KeyEntry {
        KeyEntry {
            role,
            hash: sha256(key.as_bytes()),
            name: name.to_string(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id a session cookie names this key by: the first 64 bits of a SHA-256 of its
    /// stored hash, in hex, so the cookie reveals neither the key nor its hash.
    pub fn session_id(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"liftlab session id\0");
        digest.update(self.hash);
        hex::encode(&digest.finalize()[..8])
    }

    /// The line to put in a keys file for this entry.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.role, hex::encode(self.hash), self.name)
    }
}

/// One line of a keys file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLineError {
    /// The line number, from 1.
    pub line: usize,
    pub message: String,
}

/// A keys file that could not be read: every line at fault, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_lines(.lines))]
pub struct KeysFileError {
    pub lines: Vec<KeyLineError>,
}

fn describe_lines(lines: &[KeyLineError]) -> String {
    let each: Vec<String> = lines
        .iter()
        .map(|l| format!("line {}: {}", l.line, l.message))
        .collect();
    match each.len() {
        1 => format!("keys file {}", each[0]),
        n => format!("keys file has {n} bad lines; {}", each.join("; ")),
    }
}

/// Who may call the API: either open (no keys file) or a set of hashed keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    entries: Option<Vec<KeyEntry>>,
}

impl KeyRing {
    /// No keys: every request is allowed. The server only binds loopback in this mode.
    pub fn open() -> KeyRing {
        KeyRing { entries: None }
    }

    /// A ring holding exactly `entries`.
    pub fn from_entries(entries: Vec<KeyEntry>) -> KeyRing {
        KeyRing {
            entries: Some(entries),
        }
    }

    /// Parses a keys file: `ROLE SHA256_HEX NAME` a line; `#` comments and blank lines are skipped.
    ///
    /// Every bad line is reported, not just the first, so one edit can fix them all.
    pub fn parse(text: &str) -> Result<KeyRing, KeysFileError> {
        let mut entries: Vec<KeyEntry> = Vec::new();
        let mut bad = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line, &entries) {
                Ok(entry) => entries.push(entry),
                Err(message) => bad.push(KeyLineError {
                    line: i + 1,
                    message,
                }),
            }
        }
        if bad.is_empty() {
            Ok(KeyRing::from_entries(entries))
        } else {
            Err(KeysFileError { lines: bad })
        }
    }

    /// Whether the server runs without keys.
    pub fn is_open(&self) -> bool {
        self.entries.is_none()
    }

    /// The number of keys (0 when open).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the key whose hash matches `key`, comparing against every entry in constant time.
    pub fn identify(&self, key: &str) -> Option<&KeyEntry> {
        let entries = self.entries.as_ref()?;
        let hash = sha256(key.as_bytes());
        let mut found = None;
        for entry in entries {
            if constant_time_eq(&entry.hash, &hash) {
                found = Some(entry);
            }
        }
        found
    }

    /// The key a session cookie names by [`KeyEntry::session_id`].
    pub fn by_session_id(&self, id: &str) -> Option<&KeyEntry> {
        self.entries.as_ref()?.iter().find(|e| e.session_id() == id)
    }

    /// Authenticates a request's `Authorization` header and checks that it grants `capability`.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        capability: Capability,
    ) -> Result<Principal, ApiError> {
        if self.is_open() {
            return Ok(Principal::anonymous());
        }
        let Some(value) = authorization else {
            return Err(ApiError::Unauthorized(
                "this endpoint needs an API key: send `Authorization: Bearer KEY`".to_string(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer KEY`".to_string())
            })?;
        let entry = self
            .identify(token)
            .ok_or_else(|| ApiError::Unauthorized("the API key is not recognised".to_string()))?;
        if !entry.role.grants(capability) {
            return Err(ApiError::Forbidden(format!(
                "the key `{}` has role {}, which may not {}",
                entry.name,
                entry.role,
                capability.describe()
            )));
        }
        Ok(Principal {
            name: entry.name.clone(),
            role: entry.role,
        })
    }
}

/// Reads one non-blank, non-comment line of a keys file, given the entries read before it.
fn parse_line(line: &str, earlier: &[KeyEntry]) -> Result<KeyEntry, String> {
    let mut parts = line.split_whitespace();
    let (Some(role), Some(hash), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(
            "expected `ROLE SHA256_HEX NAME` (three fields separated by spaces)".to_string(),
        );
    };
    let role = role.parse::<Role>()?;
    let hash = parse_hash(hash)?;
    if earlier.iter().any(|e| e.name == name) {
        return Err(format!("the name `{name}` is used twice"));
    }
    if earlier.iter().any(|e| e.hash == hash) {
        return Err("this key hash is listed twice".to_string());
    }
    Ok(KeyEntry {
        role,
        hash,
        name: name.to_string(),
    })
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text)
        .map_err(|_| "the key hash must be 64 hexadecimal digits (a SHA-256)".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "the key hash must be 64 hexadecimal digits (a SHA-256)".to_string())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests without an early exit, so timing reveals nothing about where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The caller a request was authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The caller of an open server (no keys file).
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".to_string(),
            role: Role::Admin,
        }
    }
}

fn authorize_request(req: &HttpRequest, capability: Capability) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("the application state is not registered".to_string()))?;
    let authorization = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::Unauthorized("the Authorization header is not valid text".to_string())
        })?),
    };
    state.keys.authorize(authorization, capability)
}

/// A caller of the HTML pages: a Bearer key as for the API, or a signed-in browser's session
/// cookie (see [`crate::session`]); either must grant reading results.
#[derive(Clone, Debug)]
pub struct PageViewer {
    pub principal: Principal,
    /// True when the session cookie let the caller in (the page then offers to sign out).
    pub signed_in: bool,
}

/// Why a page was refused: a browser is sent to sign in, any other client gets the problem.
#[derive(Debug, thiserror::Error)]
pub enum PageDenied {
    /// No valid credentials from a browser: 303 to `/signin?next=PATH`, clearing a session
    /// cookie that no longer opens anything.
    #[error("sign in to read this page")]
    SignIn { next: String, stale_cookie: bool },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl actix_web::ResponseError for PageDenied {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            PageDenied::SignIn { .. } => actix_web::http::StatusCode::SEE_OTHER,
            PageDenied::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        match self {
            PageDenied::SignIn { next, stale_cookie } => {
                let mut res = actix_web::HttpResponse::SeeOther();
                res.insert_header((header::LOCATION, signin_location(next)));
                if *stale_cookie {
                    res.insert_header((header::SET_COOKIE, crate::session::clear_cookie()));
                }
                res.finish()
            }
            PageDenied::Api(e) => e.error_response(),
        }
    }
}

/// `/signin`, with `?next=PATH` to come back to (a path percent-encoded where needed).
fn signin_location(next: &str) -> String {
    if next == "/" {
        return "/signin".to_string();
    }
    let mut out = String::from("/signin?next=");
    for b in next.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the request comes from a browser navigating to a page (it accepts HTML).
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

fn authorize_page(req: &HttpRequest) -> Result<PageViewer, PageDenied> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("the application state is not registered".to_string()))?;
    if state.keys.is_open() || req.headers().contains_key(header::AUTHORIZATION) {
        let principal = authorize_request(req, Capability::ReadResults)?;
        return Ok(PageViewer {
            principal,
            signed_in: false,
        });
    }
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::session::from_cookie_header);
    let entry = cookie.and_then(|value| {
        state
            .sessions
            .verify(value, &state.keys, crate::session::now_secs())
    });
    match entry {
        Some(entry) if entry.role.grants(Capability::ReadResults) => Ok(PageViewer {
            principal: Principal {
                name: entry.name.clone(),
                role: entry.role,
            },
            signed_in: true,
        }),
        Some(entry) => Err(ApiError::Forbidden(format!(
            "the key `{}` has role {}, which may not {}",
            entry.name,
            entry.role,
            Capability::ReadResults.describe()
        ))
        .into()),
        None if wants_html(req) => Err(PageDenied::SignIn {
            next: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            stale_cookie: cookie.is_some(),
        }),
        None => Err(ApiError::Unauthorized(
            "this page needs an API key: send `Authorization: Bearer KEY`, or sign in at /signin in a browser"
                .to_string(),
        )
        .into()),
    }
}

impl FromRequest for PageViewer {
    type Error = PageDenied;
    type Future = Ready<Result<Self, PageDenied>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize_page(req))
    }
}

macro_rules! guard {
    ($(#[$doc:meta])* $name:ident, $capability:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub Principal);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(authorize_request(req, $capability).map($name))
            }
        }
    };
}

guard!(
    /// Any authenticated caller that may read experiments (every role).
    Reader,
    Capability::ReadExperiments
);
guard!(
    /// A caller that may read results, pages and the audit log: viewer, scientist or admin.
    Viewer,
    Capability::ReadResults
);
guard!(
    /// A caller that may assign and record outcomes: router, scientist or admin.
    Router,
    Capability::Route
);
guard!(
    /// A caller that may define and control experiments: scientist or admin.
    Scientist,
    Capability::Define
);
guard!(
    /// An administrator.
    Admin,
    Capability::Administer
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProblemCode;

    const SAMPLE: &str = "\
# liftlab keys
viewer 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 dashboards

router 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 claims-router
";

    #[test]
    fn keys_file_is_parsed_with_comments_and_blank_lines() {
        let ring = KeyRing::parse(SAMPLE).expect("valid file");
        assert_eq!(ring.len(), 2);
        // The SHA-256 of "test" is the published 9f86d0…0a08.
        let entry = ring.identify("test").expect("the key `test` is listed");
        assert_eq!(entry.role(), Role::Viewer);
        assert_eq!(entry.name(), "dashboards");
        assert!(ring.identify("test2").is_some());
        assert!(ring.identify("nope").is_none());
    }

    fn check_bad(text: &str, line: usize, fragment: &str) {
        let err = KeyRing::parse(text).expect_err("the file is rejected");
        assert_eq!(err.lines.len(), 1, "{err}");
        assert_eq!(err.lines[0].line, line, "{err}");
        assert!(err.to_string().contains(fragment), "{err}");
        assert!(err.to_string().contains(&format!("line {line}: ")), "{err}");
    }

    #[test]
    fn every_bad_line_is_reported() {
        let good = KeyEntry::for_key(Role::Admin, "k1", "root").line();
        let text = format!("# keys\nroot abc bob\n{good}\n\nviewer 1234 carol\nviewer\n");
        let err = KeyRing::parse(&text).expect_err("the file is rejected");
        let lines: Vec<usize> = err.lines.iter().map(|l| l.line).collect();
        assert_eq!(lines, [2, 5, 6], "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("keys file has 3 bad lines; line 2: unknown role"),
            "{text}"
        );
        for fragment in ["line 5: the key hash", "line 6: expected `ROLE"] {
            assert!(text.contains(fragment), "{text}");
        }
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        check_bad("\n# ok\nroot abc name\n", 3, "unknown role");
        check_bad("viewer 1234 name\n", 1, "64 hexadecimal");
        check_bad("viewer\n", 1, "three fields");
        check_bad(
            "admin 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 a b\n",
            1,
            "three fields",
        );
        check_bad(
            &format!(
                "{}\n{}\n",
                KeyEntry::for_key(Role::Admin, "k1", "same").line(),
                KeyEntry::for_key(Role::Admin, "k2", "same").line()
            ),
            2,
            "used twice",
        );
    }

    #[test]
    fn entry_lines_round_trip() {
        let entry = KeyEntry::for_key(Role::Scientist, "secret", "alice");
        let ring = KeyRing::parse(&entry.line()).expect("own line parses");
        assert_eq!(ring.identify("secret"), Some(&entry));
    }

    #[test]
    fn roles_grant_what_the_design_says() {
        use Capability as C;
        let table = [
            (Role::Viewer, [true, true, false, false, false]),
            (Role::Router, [true, false, true, false, false]),
            (Role::Scientist, [true, true, true, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        let caps = [
            C::ReadExperiments,
            C::ReadResults,
            C::Route,
            C::Define,
            C::Administer,
        ];
        for (role, expected) in table {
            for (cap, want) in caps.iter().zip(expected) {
                assert_eq!(role.grants(*cap), want, "{role} {cap:?}");
            }
        }
    }

    #[test]
    fn authorize_distinguishes_401_and_403() {
        let ring = KeyRing::from_entries(vec![KeyEntry::for_key(Role::Router, "r-key", "router")]);
        let code = |auth: Option<&str>, cap| ring.authorize(auth, cap).err().map(|e| e.code());
        assert_eq!(
            code(None, Capability::Route),
            Some(ProblemCode::Unauthorized)
        );
        assert_eq!(
            code(Some("Basic abc"), Capability::Route),
            Some(ProblemCode::Unauthorized)
        );
        assert_eq!(
            code(Some("Bearer wrong"), Capability::Route),
            Some(ProblemCode::Unauthorized)
        );
        assert_eq!(code(Some("Bearer r-key"), Capability::Route), None);
        assert_eq!(
            code(Some("Bearer r-key"), Capability::Define),
            Some(ProblemCode::Forbidden)
        );
    }

    #[test]
    fn an_open_ring_lets_everyone_in() {
        let ring = KeyRing::open();
        assert!(ring.is_open());
        assert!(ring.authorize(None, Capability::Administer).is_ok());
    }
}
