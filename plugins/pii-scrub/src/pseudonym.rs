//! Keyed pseudonyms: HMAC-SHA256 of a value under the operator's secret key,
//! truncated to 64 bits and written as hex behind a prefix (`u_3f9a1c…`). The
//! same value always gives the same token under one key; without the key
//! nobody can rebuild the mapping by hashing a list of known handles.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How many tokens are remembered before the cache starts over.
const CACHE_CAPACITY: usize = 8192;

/// Bytes of the MAC kept in a token (64 bits: 16 hex digits).
const TOKEN_BYTES: usize = 8;

/// What a token stands for; each kind hashes in its own domain, so a display
/// name equal to someone's handle does not give away that handle's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A username (handle), compared case-insensitively as X does: `u_…`.
    Username,
    /// A display name: `n_…`.
    Name,
    /// A numeric user id: `i_…`.
    UserId,
}

impl Domain {
    fn prefix(self) -> &'static str {
        match self {
            Domain::Username => "u_",
            Domain::Name => "n_",
            Domain::UserId => "i_",
        }
    }

    fn slot(self) -> usize {
        match self {
            Domain::Username => 0,
            Domain::Name => 1,
            Domain::UserId => 2,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Domain::Username => b'u',
            Domain::Name => b'n',
            Domain::UserId => b'i',
        }
    }
}

/// Turns values into keyed tokens, remembering recent ones (authors and
/// mentions repeat a lot in a stream).
#[derive(Debug)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
    /// One map per domain, so lookups borrow the value instead of copying it.
    cache: Mutex<[HashMap<String, String>; 3]>,
}

impl Pseudonymizer {
    /// A pseudonymizer under `key` (any length; HMAC accepts every key size).
    pub fn new(key: &[u8]) -> Pseudonymizer {
        Pseudonymizer {
            keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length"),
            cache: Mutex::new(Default::default()),
        }
    }

    /// The token for `value` in `domain`, appended to `out`.
    pub fn push_token(&self, domain: Domain, value: &str, out: &mut String) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cache = &mut cache[domain.slot()];
        if let Some(token) = cache.get(value) {
            out.push_str(token);
            return;
        }
        let token = self.compute(domain, value);
        out.push_str(&token);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(value.to_owned(), token);
    }

    /// The token for `value` in `domain`.
    pub fn token(&self, domain: Domain, value: &str) -> String {
        let mut out = String::with_capacity(2 + 2 * TOKEN_BYTES);
        self.push_token(domain, value, &mut out);
        out
    }

    fn compute(&self, domain: Domain, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(&[domain.tag(), 0]);
        if domain == Domain::Username {
            for chunk in value.as_bytes().chunks(64) {
                let mut lower = [0u8; 64];
                for (slot, byte) in lower.iter_mut().zip(chunk) {
                    *slot = byte.to_ascii_lowercase();
                }
                mac.update(&lower[..chunk.len()]);
            }
        } else {
            mac.update(value.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut token = String::with_capacity(2 + 2 * TOKEN_BYTES);
        token.push_str(domain.prefix());
        for byte in &digest[..TOKEN_BYTES] {
            let _ = write!(token, "{byte:02x}");
        }
        token
    }
}
