//! The dashboard's login: an argon2 password hash, session tokens, and a limit on failed attempts.
//!
//! The password is checked against an argon2 PHC string (the check is constant
//! time in the hash); the user name is compared in constant time too, and the
//! hash is verified even when the name is wrong, so a reply's timing tells
//! neither apart. A session is 32 random bytes handed out as a cookie; the server
//! keeps only their SHA-256, looked up by that digest and compared in constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::DashboardConfig;

/// The systemd credential holding the password hash when the config names none.
pub const CREDENTIAL: &str = "dashboard-password-hash";

/// Why the login could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "dashboard: no password hash: set dashboard.password_hash or dashboard.password_hash_file, or hand the service the credential `{CREDENTIAL}` (LoadCredential=); make a hash with `tweetpipe dashboard hash-password`"
    )]
    Missing,
    #[error("dashboard: cannot read the password hash from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "dashboard: the password hash from {origin} is not an argon2 PHC string ({message}); make one with `tweetpipe dashboard hash-password`"
    )]
    Invalid { origin: String, message: String },
    #[error("dashboard: hashing the password failed: {0}")]
    Hash(String),
}

/// The configured login.
#[derive(Debug, Clone)]
pub struct Credentials {
    user: String,
    /// A validated PHC string.
    hash: String,
}

impl Credentials {
    /// The user and hash from `[dashboard]`, its file, or the systemd credential.
    pub fn load(config: &DashboardConfig) -> Result<Credentials, AuthError> {
        let credential_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Credentials::load_with(config, credential_dir.as_deref())
    }

    fn load_with(
        config: &DashboardConfig,
        credential_dir: Option<&Path>,
    ) -> Result<Credentials, AuthError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| AuthError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let (hash, origin) = if let Some(hash) = &config.password_hash {
            (hash.clone(), "dashboard.password_hash".to_owned())
        } else if let Some(path) = &config.password_hash_file {
            (read(path)?, path.display().to_string())
        } else if let Some(path) = credential_dir
            .map(|dir| dir.join(CREDENTIAL))
            .filter(|path| path.exists())
        {
            (read(&path)?, format!("the credential {}", path.display()))
        } else {
            return Err(AuthError::Missing);
        };
        let hash = hash.trim().to_owned();
        PasswordHash::new(&hash).map_err(|error| AuthError::Invalid {
            origin,
            message: error.to_string(),
        })?;
        Ok(Credentials {
            user: config.user.clone(),
            hash,
        })
    }

    /// True when `user` and `password` match; takes the time of an argon2 check
    /// whatever is wrong (run it off the async threads).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let user_ok: bool = self.user.as_bytes().ct_eq(user.as_bytes()).into();
        let password_ok = match PasswordHash::new(&self.hash) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        };
        user_ok & password_ok
    }
}

/// An argon2id PHC string of `password` with a random salt (for `[dashboard] password_hash`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| AuthError::Hash(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AuthError::Hash(error.to_string()))
}

/// The live sessions, by the SHA-256 of their token.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

/// Sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 1024;

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// A new session's token (64 hex digits).
    pub fn open(&self) -> String {
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut token);
        let text: String = token.iter().map(|byte| format!("{byte:02x}")).collect();
        let now = Instant::now();
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, expires| *expires > now);
            if live.len() >= MAX_SESSIONS
                && let Some(oldest) = live.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
            {
                live.remove(&oldest);
            }
            live.insert(digest(&text), now + self.ttl);
        }
        text
    }

    /// True while `token` names a live session.
    pub fn check(&self, token: &str) -> bool {
        let wanted = digest(token);
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get_key_value(&wanted) {
            Some((key, expires)) => bool::from(key.ct_eq(&wanted)) && *expires > Instant::now(),
            None => false,
        }
    }

    /// Ends the session `token` names.
    pub fn close(&self, token: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&digest(token));
        }
    }

    /// The session's lifetime (the cookie's Max-Age).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Failed logins per client address within the last minute.
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

/// Client addresses tracked at most (a flood of addresses cannot grow memory).
const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

impl LoginLimiter {
    pub fn new(per_minute: u32) -> LoginLimiter {
        LoginLimiter {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `None` when `client` may try now, else how long it must wait.
    pub fn wait(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().ok()?;
        let list = failures.get_mut(&client)?;
        list.retain(|at| now.duration_since(*at) < WINDOW);
        if list.len() < self.per_minute as usize {
            return None;
        }
        let oldest = list.first().copied()?;
        Some(
            WINDOW
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1)),
        )
    }

    /// Counts a failed attempt of `client`.
    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&client) {
            failures.retain(|_, list| {
                list.last()
                    .is_some_and(|at| now.duration_since(*at) < WINDOW)
            });
            if failures.len() >= MAX_TRACKED {
                // Still full of recent offenders: the newest address shares their fate.
                return;
            }
        }
        failures.entry(client).or_default().push(now);
    }

    /// A successful login clears the client's failures.
    pub fn succeeded(&self, client: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_user_only() {
        let hash = hash_password("correct horse").unwrap();
        let config = DashboardConfig {
            password_hash: Some(hash),
            ..DashboardConfig::default()
        };
        let credentials = Credentials::load_with(&config, None).unwrap();
        assert!(credentials.verify("admin", "correct horse"));
        assert!(!credentials.verify("admin", "correct horsf"));
        assert!(!credentials.verify("admim", "correct horse"));
        assert!(!credentials.verify("", ""));
    }

    #[test]
    fn a_missing_or_malformed_hash_says_how_to_make_one() {
        let missing = Credentials::load_with(&DashboardConfig::default(), None).unwrap_err();
        assert!(missing.to_string().contains("hash-password"), "{missing}");
        let config = DashboardConfig {
            password_hash: Some("hunter2".to_owned()),
            ..DashboardConfig::default()
        };
        let invalid = Credentials::load_with(&config, None).unwrap_err();
        assert!(invalid.to_string().contains("PHC"), "{invalid}");
    }

    #[test]
    fn the_hash_comes_from_the_systemd_credential_when_the_config_names_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CREDENTIAL),
            hash_password("pw").unwrap() + "\n",
        )
        .unwrap();
        let credentials =
            Credentials::load_with(&DashboardConfig::default(), Some(dir.path())).unwrap();
        assert!(credentials.verify("admin", "pw"));
    }

    #[test]
    fn sessions_are_checked_by_token_and_end_on_close() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let token = sessions.open();
        assert_eq!(token.len(), 64);
        assert!(sessions.check(&token));
        assert!(!sessions.check(&token[1..]));
        assert!(!sessions.check(""));
        sessions.close(&token);
        assert!(!sessions.check(&token));
        let expired = Sessions::new(Duration::ZERO);
        let token = expired.open();
        assert!(!expired.check(&token));
    }

    #[test]
    fn failures_beyond_the_limit_make_a_client_wait() {
        let limiter = LoginLimiter::new(3);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.wait(client), None);
            limiter.failed(client);
        }
        assert!(limiter.wait(client).is_some());
        assert_eq!(limiter.wait(other), None);
        limiter.succeeded(client);
        assert_eq!(limiter.wait(client), None);
    }
}
