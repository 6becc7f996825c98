//! The plugin's settings and the work done on one post: pseudonyms for the
//! author and the mentioned accounts, redactions in the text, the display name
//! and the location, and the `pii_redactions` count.

use serde::Deserialize;
use tweetpipe_plugin::{Changes, Config, Post};

use crate::numbering::{self, Regions};
use crate::pseudonym::{Domain, Pseudonymizer};
use crate::scan::{self, Detectors};

/// The shortest key accepted: shorter secrets are guessable, and a guessed key
/// makes every pseudonym reversible by hashing known handles.
pub const MIN_KEY_LEN: usize = 16;

/// A configuration the plugin refuses, with what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// `key` is absent.
    #[error(
        "config.key is missing: set a secret of at least {MIN_KEY_LEN} characters; it keys the pseudonyms, and anyone holding it can link them back to handles"
    )]
    MissingKey,
    /// `key` is too short to be a secret.
    #[error("config.key is {0} characters long; use at least {MIN_KEY_LEN}")]
    ShortKey(usize),
    /// `key_file` was given; plugins cannot read files.
    #[error(
        "config.key_file is not supported: plugins run without filesystem access; put the secret itself in config.key"
    )]
    KeyFile,
    /// `detect` names a detector that does not exist.
    #[error(
        "config.detect: unknown detector `{0}` (expected some of \"email\", \"phone\", \"card\", \"iban\", \"ip\")"
    )]
    UnknownDetector(String),
    /// `phone_regions` names a region the numbering plans do not know.
    #[error(
        "config.phone_regions: unknown region `{0}` (expected ISO codes among {known}); numbers written with + or 00 are caught for every country anyway",
        known = numbering::region_codes()
    )]
    UnknownRegion(String),
    /// `name` is neither `hash` nor `redact`.
    #[error("config.name must be \"hash\" or \"redact\", got `{0}`")]
    UnknownNameMode(String),
    /// The table does not have the expected shape (unknown key, wrong type).
    #[error("{0} (known keys: key, detect, name, phone_regions)")]
    Shape(String),
}

/// The `config` table, as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    key: Option<String>,
    key_file: Option<String>,
    detect: Option<Vec<String>>,
    name: Option<String>,
    phone_regions: Option<Vec<String>>,
}

/// What happens to the author's display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMode {
    /// Replaced by a keyed token (`n_…`), the default.
    Hash,
    /// Kept, with personal data inside it redacted.
    Redact,
}

/// Everything one post needs; built once per instance from the config.
#[derive(Debug)]
pub struct Scrubber {
    pseudonyms: Pseudonymizer,
    detectors: Detectors,
    name: NameMode,
}

impl Scrubber {
    /// A scrubber with every detector on and hashed display names.
    pub fn new(key: &[u8]) -> Scrubber {
        Scrubber {
            pseudonyms: Pseudonymizer::new(key),
            detectors: Detectors::ALL,
            name: NameMode::Hash,
        }
    }

    /// Reads the plugin's `config` table.
    pub fn from_config(config: &Config) -> Result<Scrubber, SettingsError> {
        let settings: Settings = config
            .parse()
            .map_err(|error| SettingsError::Shape(error.to_string()))?;
        if settings.key_file.is_some() {
            return Err(SettingsError::KeyFile);
        }
        let key = settings.key.ok_or(SettingsError::MissingKey)?;
        if key.chars().count() < MIN_KEY_LEN {
            return Err(SettingsError::ShortKey(key.chars().count()));
        }
        let detectors = match settings.detect {
            None => Detectors::ALL,
            Some(names) => {
                let mut detectors = Detectors::NONE;
                for name in names {
                    match name.as_str() {
                        "email" => detectors.email = true,
                        "phone" => detectors.phone = true,
                        "card" => detectors.card = true,
                        "iban" => detectors.iban = true,
                        "ip" => detectors.ip = true,
                        _ => return Err(SettingsError::UnknownDetector(name)),
                    }
                }
                detectors
            }
        };
        let mut detectors = detectors;
        if let Some(regions) = &settings.phone_regions {
            detectors.phone_regions = Regions::from_codes(regions.iter().map(String::as_str))
                .map_err(|code| SettingsError::UnknownRegion(code.to_owned()))?;
        }
        let name = match settings.name.as_deref() {
            None | Some("hash") => NameMode::Hash,
            Some("redact") => NameMode::Redact,
            Some(other) => return Err(SettingsError::UnknownNameMode(other.to_owned())),
        };
        Ok(Scrubber {
            pseudonyms: Pseudonymizer::new(key.as_bytes()),
            detectors,
            name,
        })
    }

    /// The token of a username (without `@`).
    pub fn username_token(&self, username: &str) -> String {
        self.pseudonyms.token(Domain::Username, username)
    }

    /// Scrubs one post in place; sets `pii_redactions` when it redacted something.
    pub fn scrub_post(&self, post: &mut Post) {
        self.scrub(post).apply(post);
    }

    /// What scrubbing `post` changes, computed without copying the post.
    pub fn scrub(&self, post: &Post) -> Changes {
        let mut changes = Changes::new();
        let mut redactions = 0;
        let author = &post.author;
        if !author.id.is_empty() {
            changes.set_author_id(self.pseudonyms.token(Domain::UserId, &author.id));
        }
        if let Some(id) = post.in_reply_to_user_id.as_deref() {
            changes.set_in_reply_to_user_id(Some(self.pseudonyms.token(Domain::UserId, id)));
        }
        if !author.username.is_empty() {
            changes.set_author_username(self.pseudonyms.token(Domain::Username, &author.username));
        }
        match self.name {
            NameMode::Hash if !author.name.is_empty() => {
                changes.set_author_name(self.pseudonyms.token(Domain::Name, &author.name));
            }
            NameMode::Hash => {}
            NameMode::Redact => {
                let scrubbed = scan::scrub(&author.name, self.detectors, None);
                redactions += scrubbed.redactions;
                if let Some(name) = scrubbed.text {
                    changes.set_author_name(name);
                }
            }
        }
        if let Some(location) = author.location.as_deref() {
            let scrubbed = scan::scrub(location, self.detectors, None);
            redactions += scrubbed.redactions;
            if let Some(location) = scrubbed.text {
                changes.set_author_location(Some(location));
            }
        }
        if !post.mentions.is_empty() {
            changes.set_mentions(
                post.mentions
                    .iter()
                    .map(|mention| self.pseudonyms.token(Domain::Username, mention))
                    .collect(),
            );
        }
        let mut on_handle = |handle: &str, out: &mut String| {
            self.pseudonyms.push_token(Domain::Username, handle, out);
        };
        let scrubbed = scan::scrub(&post.text, self.detectors, Some(&mut on_handle));
        if let Some(text) = scrubbed.text {
            changes.set_text(text);
        }
        redactions += scrubbed.redactions;
        // Only when something was redacted: most posts carry no personal data,
        // and an attribute on every post would cost more than the scan.
        if redactions > 0 {
            changes.set_attr("pii_redactions", i64::from(redactions));
        }
        changes
    }
}
