//! A hand-written, single-pass scanner that finds personal data in free text:
//! e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IPv4
//! and IPv6 addresses, and `@handles`. It works on bytes (every pattern is
//! ASCII), never backtracks further than the current token, allocates only
//! when it replaces something, and leaves years, prices, times, dates, ids,
//! version numbers and scores alone.

use std::ops::Range;

/// What kind of personal data a redaction replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An e-mail address, replaced by `[EMAIL]`.
    Email,
    /// A phone number, replaced by `[PHONE]`.
    Phone,
    /// A payment card number that passes the Luhn check, replaced by `[CARD]`.
    Card,
    /// An IPv4 or IPv6 address, replaced by `[IP]`.
    Ip,
}

impl Kind {
    /// The text that replaces a match.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::Card => "[CARD]",
            Kind::Ip => "[IP]",
        }
    }
}

/// Which detectors run. All are on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detectors {
    /// E-mail addresses.
    pub email: bool,
    /// Phone numbers, national and international.
    pub phone: bool,
    /// Payment card numbers.
    pub card: bool,
    /// IPv4 and IPv6 addresses.
    pub ip: bool,
}

impl Default for Detectors {
    fn default() -> Detectors {
        Detectors::ALL
    }
}

impl Detectors {
    /// Every detector on.
    pub const ALL: Detectors = Detectors {
        email: true,
        phone: true,
        card: true,
        ip: true,
    };
    /// Every detector off.
    pub const NONE: Detectors = Detectors {
        email: false,
        phone: false,
        card: false,
        ip: false,
    };
}

/// What the scanner found at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Personal data to replace by its placeholder.
    Redact(Kind),
    /// An `@handle`; the range is the handle without `@`.
    Handle(Range<usize>),
}

/// The result of scrubbing one text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The new text, or `None` when nothing was replaced.
    pub text: Option<String>,
    /// How many redactions (not handle replacements) were made.
    pub redactions: u32,
}

/// Appends the replacement of a handle (given without `@`) to the output.
pub type HandleWriter<'a> = &'a mut dyn FnMut(&str, &mut String);

/// Replaces personal data in `text`. `on_handle`, when given, is called for
/// each `@handle` (without `@`) and appends its replacement to the output;
/// without it handles are left as they are.
pub fn scrub(
    text: &str,
    detectors: Detectors,
    mut on_handle: Option<HandleWriter<'_>>,
) -> Scrubbed {
    let bytes = text.as_bytes();
    let handles = on_handle.is_some();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut redactions = 0;
    let mut index = 0;
    while index < bytes.len() {
        let (start, end, finding) = match find_at(bytes, index, copied, detectors, handles) {
            Step::Found(start, end, finding) => (start, end, finding),
            Step::Skip(next) => {
                index = next.max(skip_token(bytes, index));
                continue;
            }
            Step::Nothing => {
                index = skip_token(bytes, index);
                continue;
            }
        };
        let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
        out.push_str(&text[copied..start]);
        match finding {
            Finding::Redact(kind) => {
                out.push_str(kind.placeholder());
                redactions += 1;
            }
            Finding::Handle(range) => {
                out.push('@');
                if let Some(on_handle) = on_handle.as_deref_mut() {
                    on_handle(&text[range], out);
                }
            }
        }
        copied = end;
        index = end;
    }
    if let Some(out) = out.as_mut() {
        out.push_str(&text[copied..]);
    }
    Scrubbed {
        text: out,
        redactions,
    }
}

/// Every finding in `text`, as (byte range, finding); for tests and tools.
pub fn findings(text: &str, detectors: Detectors) -> Vec<(Range<usize>, Finding)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        match find_at(bytes, index, copied, detectors, true) {
            Step::Found(start, end, finding) => {
                found.push((start..end, finding));
                copied = end;
                index = end;
            }
            Step::Skip(next) => index = next.max(skip_token(bytes, index)),
            Step::Nothing => index = skip_token(bytes, index),
        }
    }
    found
}

/// Moves past the byte at `index`, or past the whole alphanumeric run it starts:
/// nothing starts inside a word.
fn skip_token(bytes: &[u8], index: usize) -> usize {
    if is_word(bytes[index]) {
        let mut end = index + 1;
        while end < bytes.len() && is_word(bytes[end]) {
            end += 1;
        }
        end
    } else {
        index + 1
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// What the scanner does after looking at a position.
enum Step {
    /// Replace `start..end`.
    Found(usize, usize, Finding),
    /// Nothing here, and nothing starts before this offset either (a run of
    /// digit groups is judged whole, never again from its middle).
    Skip(usize),
    /// Nothing here.
    Nothing,
}

/// Looks for a finding starting at `index` (or, for e-mail addresses, at the
/// `@` at `index`, reaching back no further than `floor`). Returns its start,
/// end and kind.
fn find_at(bytes: &[u8], index: usize, floor: usize, detectors: Detectors, handles: bool) -> Step {
    let mut skip = 0;
    match find_here(bytes, index, floor, detectors, handles, &mut skip) {
        Some((start, end, finding)) => Step::Found(start, end, finding),
        None if skip > index => Step::Skip(skip),
        None => Step::Nothing,
    }
}

fn find_here(
    bytes: &[u8],
    index: usize,
    floor: usize,
    detectors: Detectors,
    handles: bool,
    skip: &mut usize,
) -> Option<(usize, usize, Finding)> {
    let byte = bytes[index];
    let prev = if index == 0 { b' ' } else { bytes[index - 1] };
    match byte {
        b'@' => {
            if detectors.email
                && let Some((start, end)) = email(bytes, index, floor)
            {
                return Some((start, end, Finding::Redact(Kind::Email)));
            }
            if handles && !is_word(prev) {
                let end = handle(bytes, index + 1)?;
                return Some((index, end, Finding::Handle(index + 1..end)));
            }
            None
        }
        b'+' if detectors.phone && !is_word(prev) => {
            let end = international_phone(bytes, index + 1)?;
            Some((index, end, Finding::Redact(Kind::Phone)))
        }
        b'(' if detectors.phone && !is_word(prev) => {
            let end = national_phone(bytes, index)?;
            Some((index, end, Finding::Redact(Kind::Phone)))
        }
        b':' if detectors.ip && !is_word(prev) && prev != b':' => {
            let end = ipv6(bytes, index)?;
            Some((index, end, Finding::Redact(Kind::Ip)))
        }
        _ if byte.is_ascii_alphanumeric() => {
            if is_word(prev) {
                return None;
            }
            let number_start = !matches!(prev, b'.' | b',' | b'/' | b':' | b'$' | b'#');
            if byte.is_ascii_digit() && number_start {
                if detectors.ip
                    && let Some(end) = ipv4(bytes, index)
                    && ipv4_ends_cleanly(bytes, end)
                {
                    return Some((index, end, Finding::Redact(Kind::Ip)));
                }
                if detectors.ip
                    && let Some(end) = ipv6(bytes, index)
                {
                    return Some((index, end, Finding::Redact(Kind::Ip)));
                }
                let groups = DigitGroups::parse(bytes, index);
                if detectors.card
                    && let Some(end) = card(bytes, index, &groups)
                {
                    return Some((index, end, Finding::Redact(Kind::Card)));
                }
                if detectors.phone
                    && let Some(end) = national_phone_groups(bytes, index, &groups)
                {
                    return Some((index, end, Finding::Redact(Kind::Phone)));
                }
                // A long run that is neither (a card failing Luhn, an ISBN) is
                // not scanned again from its middle; a short one may hold an
                // address after a number (`port 80 10.0.0.1`).
                if groups.digits(groups.count) > 12 {
                    *skip = groups.end[groups.count - 1];
                }
                None
            } else if detectors.ip && byte.is_ascii_hexdigit() && prev != b'.' {
                let end = ipv6(bytes, index)?;
                Some((index, end, Finding::Redact(Kind::Ip)))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// True when a number ending at `end` really ends there: not followed by a
/// word character, nor by `.`, `,`, `-`, `:` or `/` and another digit.
fn ends_cleanly(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        None => true,
        Some(&byte) if is_word(byte) => false,
        Some(b'.' | b',' | b'-' | b':' | b'/') => {
            !bytes.get(end + 1).is_some_and(|next| next.is_ascii_digit())
        }
        Some(_) => true,
    }
}

/// Like [`ends_cleanly`], but `10.0.0.1:8080` (an address and a port) ends.
fn ipv4_ends_cleanly(bytes: &[u8], end: usize) -> bool {
    bytes.get(end) == Some(&b':') && bytes.get(end + 1) != Some(&b':') || ends_cleanly(bytes, end)
}

// ---------------------------------------------------------------- e-mail ---

/// How far back a local part is looked for (RFC 5321 allows 64 octets).
const LOCAL_MAX: usize = 64;

fn is_local(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An address around the `@` at `at`: the local part reaches back to `floor`
/// at most; the domain needs a dot and an alphabetic top-level label.
fn email(bytes: &[u8], at: usize, floor: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > floor && is_local(bytes[start - 1]) {
        start -= 1;
    }
    // Internationalised local parts (`maría-luz@…`): take letters and digits
    // of any script, looking back a bounded distance.
    if start > floor && bytes[start - 1] >= 0x80 {
        let mut window = floor.max(at.saturating_sub(LOCAL_MAX));
        while window < at && (bytes[window] & 0xC0) == 0x80 {
            window += 1;
        }
        if let Ok(before) = std::str::from_utf8(&bytes[window..at]) {
            start = at;
            for (offset, char) in before.char_indices().rev() {
                if char.is_alphanumeric() || char.is_ascii() && is_local(char as u8) {
                    start = window + offset;
                } else {
                    break;
                }
            }
        }
    }
    while start < at && matches!(bytes[start], b'.' | b'-' | b'+') {
        start += 1;
    }
    if start == at || bytes[at - 1] == b'.' {
        return None;
    }
    let mut end = at + 1;
    while end < bytes.len()
        && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'.' | b'-'))
    {
        end += 1;
    }
    while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &bytes[at + 1..end];
    if domain.is_empty() || domain.windows(2).any(|pair| pair == b"..") || domain[0] == b'.' {
        return None;
    }
    let dot = domain.iter().rposition(|&byte| byte == b'.')?;
    let tld = &domain[dot + 1..];
    if tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    if bytes.get(end).is_some_and(|&byte| byte == b'_') {
        return None;
    }
    Some((start, end))
}

/// A handle (`A-Z a-z 0-9 _`, X allows 15 but older and synthetic accounts run
/// longer) starting at `start`; returns its end.
fn handle(bytes: &[u8], start: usize) -> Option<usize> {
    let mut end = start;
    while end < bytes.len() && is_word(bytes[end]) {
        end += 1;
    }
    (end > start).then_some(end)
}

// ------------------------------------------------------------------- IPs ---

/// A dotted-quad IPv4 address starting at `start`; returns its end.
fn ipv4(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start;
    for octet in 0..4 {
        if octet > 0 {
            if bytes.get(index) != Some(&b'.') {
                return None;
            }
            index += 1;
        }
        let digits_start = index;
        let mut value = 0u32;
        while index < bytes.len() && bytes[index].is_ascii_digit() && index - digits_start < 3 {
            value = value * 10 + u32::from(bytes[index] - b'0');
            index += 1;
        }
        if index == digits_start || value > 255 {
            return None;
        }
    }
    if bytes.get(index).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(index)
}

/// An IPv6 address starting at `start` (full, `::`-compressed, or with an
/// embedded IPv4 tail); returns its end. Times such as `10:30:45` never have
/// eight groups nor a `::`, so they are not addresses.
fn ipv6(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start;
    let mut groups = 0;
    let mut compressed = false;
    let mut leading = false;
    if bytes[index..].starts_with(b"::") {
        compressed = true;
        leading = true;
        index += 2;
    }
    loop {
        if (compressed && groups <= 6 || groups == 6)
            && index > start
            && let Some(end) = ipv4(bytes, index)
        {
            groups += 2;
            index = end;
            break;
        }
        let mut digits = 0;
        while index + digits < bytes.len() && bytes[index + digits].is_ascii_hexdigit() {
            digits += 1;
        }
        if digits == 0 || digits > 4 {
            if digits > 4 {
                return None;
            }
            break;
        }
        groups += 1;
        index += digits;
        if bytes.get(index) != Some(&b':') {
            break;
        }
        if bytes.get(index + 1) == Some(&b':') {
            if compressed {
                return None;
            }
            compressed = true;
            index += 2;
        } else if bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit) {
            index += 1;
        } else {
            break;
        }
    }
    let has_digit = bytes[start..index].iter().any(u8::is_ascii_digit);
    let valid = has_digit
        && if compressed {
            groups <= 7 && (groups >= 2 || leading && groups >= 1)
        } else {
            groups == 8
        };
    let after = bytes.get(index).copied().unwrap_or(b' ');
    let dotted_on = after == b'.' && bytes.get(index + 1).is_some_and(u8::is_ascii_digit);
    let colon_on = after == b':' && !compressed;
    (valid && !is_word(after) && !colon_on && !dotted_on).then_some(index)
}

// ------------------------------------------------------ cards and phones ---

const MAX_GROUPS: usize = 8;

/// A run of digit groups separated by single spaces, dashes or dots, where a
/// group may be in parentheses: `(555) 123-4567`, `4111 1111 1111 1111`.
#[derive(Debug)]
struct DigitGroups {
    count: usize,
    /// Digits in each group.
    len: [u8; MAX_GROUPS],
    /// Byte offset just past each group.
    end: [usize; MAX_GROUPS],
    /// The separator before each group (0 for none).
    sep: [u8; MAX_GROUPS],
    /// Whether each group is in parentheses.
    paren: [bool; MAX_GROUPS],
}

impl DigitGroups {
    fn parse(bytes: &[u8], start: usize) -> DigitGroups {
        let mut groups = DigitGroups {
            count: 0,
            len: [0; MAX_GROUPS],
            end: [0; MAX_GROUPS],
            sep: [0; MAX_GROUPS],
            paren: [false; MAX_GROUPS],
        };
        let mut index = start;
        let mut sep = 0;
        while groups.count < MAX_GROUPS {
            let paren = bytes.get(index) == Some(&b'(');
            let digits_start = index + usize::from(paren);
            let mut digits_end = digits_start;
            while digits_end < bytes.len() && bytes[digits_end].is_ascii_digit() {
                digits_end += 1;
            }
            let digits = digits_end - digits_start;
            if digits == 0 || digits > 19 {
                break;
            }
            let end = if paren {
                if bytes.get(digits_end) != Some(&b')') {
                    break;
                }
                digits_end + 1
            } else {
                digits_end
            };
            let slot = groups.count;
            groups.len[slot] = digits as u8;
            groups.end[slot] = end;
            groups.sep[slot] = sep;
            groups.paren[slot] = paren;
            groups.count += 1;
            index = end;
            match bytes.get(index) {
                Some(&byte @ (b' ' | b'-' | b'.'))
                    if bytes
                        .get(index + 1)
                        .is_some_and(|next| next.is_ascii_digit() || *next == b'(') =>
                {
                    sep = byte;
                    index += 1;
                }
                Some(b'(') => sep = 0,
                Some(byte) if paren && byte.is_ascii_digit() => sep = 0,
                _ => break,
            }
        }
        groups
    }

    fn digits(&self, upto: usize) -> usize {
        self.len[..upto].iter().map(|&len| usize::from(len)).sum()
    }

    /// How many leading groups to try, longest first: the whole run, then
    /// shorter runs cut at a space (never at a dash or dot, so an ISBN or a
    /// date is judged whole).
    fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        (1..=self.count)
            .rev()
            .filter(|&upto| upto == self.count || self.sep[upto] == b' ')
    }
}

/// A payment card number: 13 to 19 digits, in one run or in groups of 3 to 6
/// separated by spaces or dashes, with a card-network first digit (2 to 6, so
/// post ids, which start with 1, never qualify) and a valid Luhn checksum.
fn card(bytes: &[u8], start: usize, groups: &DigitGroups) -> Option<usize> {
    if !(b'2'..=b'6').contains(&bytes[start]) {
        return None;
    }
    for upto in groups.candidates() {
        let digits = groups.digits(upto);
        if !(13..=19).contains(&digits) {
            continue;
        }
        let shaped = (0..upto).all(|group| {
            !groups.paren[group]
                && (group == 0 || matches!(groups.sep[group], b' ' | b'-'))
                && (upto == 1 || (3..=6).contains(&groups.len[group]))
        });
        let end = groups.end[upto - 1];
        if shaped && ends_cleanly(bytes, end) && luhn(&bytes[start..end]) {
            return Some(end);
        }
    }
    None
}

/// The Luhn checksum over the digits of `text` (separators skipped).
pub fn luhn(text: &[u8]) -> bool {
    let mut sum = 0;
    let mut double = false;
    for &byte in text.iter().rev().filter(|byte| byte.is_ascii_digit()) {
        let mut digit = u32::from(byte - b'0');
        if double {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
        double = !double;
    }
    sum % 10 == 0
}

/// An international number after its `+`: 8 to 15 digits (E.164) in groups.
fn international_phone(bytes: &[u8], start: usize) -> Option<usize> {
    if !bytes.get(start).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let groups = DigitGroups::parse(bytes, start);
    groups.candidates().find_map(|upto| {
        let end = groups.end[upto - 1];
        ((8..=15).contains(&groups.digits(upto)) && ends_cleanly(bytes, end)).then_some(end)
    })
}

/// A national number starting with `(`.
fn national_phone(bytes: &[u8], start: usize) -> Option<usize> {
    let groups = DigitGroups::parse(bytes, start);
    national_phone_groups(bytes, start, &groups)
}

/// A national number: 9 to 12 digits, either in groups (`(555) 123-4567`,
/// `020 7946 0958`, `06 12 34 56 78`) or in one run shaped like a number
/// (a North American `2025550123` or a trunk-prefixed `07700900123`). Dates
/// (`2026-11-21`), thousands (`1 000 000 000`) and ISBN-like runs are not.
fn national_phone_groups(bytes: &[u8], start: usize, groups: &DigitGroups) -> Option<usize> {
    // A longer run is a card number that failed its checksum, an account
    // number or an id; a phone number inside it is a coincidence.
    if groups.digits(groups.count) > 15 {
        return None;
    }
    for upto in groups.candidates() {
        let digits = groups.digits(upto);
        let end = groups.end[upto - 1];
        if !(9..=12).contains(&digits) || !ends_cleanly(bytes, end) {
            continue;
        }
        let first = bytes[start + usize::from(groups.paren[0])];
        let ok = if upto == 1 {
            !groups.paren[0]
                && (digits == 10
                    && !matches!(first, b'0' | b'1')
                    && !matches!(bytes[start + 3], b'0' | b'1')
                    || first == b'0' && (10..=11).contains(&digits))
        } else {
            (1..upto).all(|group| groups.len[group] >= 2 || groups.paren[group])
                && groups.len[..upto].iter().all(|&len| len <= 8)
                && !looks_like_date(groups, upto)
                && !looks_like_thousands(groups, upto)
        };
        if ok {
            return Some(end);
        }
    }
    None
}

/// `2026-11-21 …`, `21.11.2026 …`: a date at the start of the groups.
fn looks_like_date(groups: &DigitGroups, upto: usize) -> bool {
    if upto < 3 || groups.paren[..3].iter().any(|&paren| paren) {
        return false;
    }
    let len = &groups.len;
    groups.sep[1] == groups.sep[2]
        && (len[0] == 4 && len[1] <= 2 && len[2] <= 2 || len[0] <= 2 && len[1] <= 2 && len[2] == 4)
}

/// `1 000 000 000`, `120.000.000`: a number written with thousands separators.
fn looks_like_thousands(groups: &DigitGroups, upto: usize) -> bool {
    groups.len[0] <= 3
        && !groups.paren[0]
        && (1..upto).all(|group| {
            groups.len[group] == 3 && !groups.paren[group] && groups.sep[group] == groups.sep[1]
        })
}
