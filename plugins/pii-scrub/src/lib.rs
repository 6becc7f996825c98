//! `pii-scrub`: privacy before storage. Replaces the author's id, handle and
//! display name, the id of the user replied to, the mentioned handles and the `@handles` in the text with
//! keyed pseudonyms, and redacts e-mail addresses, phone numbers, payment card
//! numbers and IP addresses in the text, the display name and the location.
//!
//! Layout: [`scan`] finds personal data in text, [`numbering`] holds the
//! phone numbering plans it checks against, [`banking`] the card networks and
//! IBAN rules, [`pseudonym`] makes keyed
//! tokens, [`scrubber`] reads the config and applies both to a post, and
//! `plugin` (built for WebAssembly only) holds the entry points.

pub mod banking;
pub mod numbering;
pub mod pseudonym;
pub mod scan;
pub mod scrubber;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
mod plugin;
