//! A hand-written, single-pass scanner that finds personal data in free text:
//! e-mail addresses, phone numbers (checked against [`numbering`] plans),
//! payment card numbers and IBANs (checked by [`banking`]), IPv4 and IPv6
//! addresses, and `@handles`. It works on bytes (every pattern is
//! ASCII), never backtracks further than the current token, allocates only
//! when it replaces something, and leaves years, prices, times, dates, ids,
//! version numbers and scores alone.

use std::ops::Range;

use crate::banking::{self, CardPrefix};
use crate::numbering::{self, National, Regions};

pub use crate::banking::luhn;

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
    /// An IBAN that passes its mod-97 check, replaced by `[IBAN]`.
    Iban,
}

impl Kind {
    /// The text that replaces a match.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::Card => "[CARD]",
            Kind::Ip => "[IP]",
            Kind::Iban => "[IBAN]",
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
    /// IBANs.
    pub iban: bool,
    /// The regions whose national numbers are recognised (numbers after `+`
    /// or `00` are recognised for every country).
    pub phone_regions: Regions,
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
        iban: true,
        phone_regions: Regions::ALL,
    };
    /// Every detector off.
    pub const NONE: Detectors = Detectors {
        email: false,
        phone: false,
        card: false,
        ip: false,
        iban: false,
        phone_regions: Regions::ALL,
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
            if cue_before(bytes, index).protect {
                return None;
            }
            let end = international_phone(bytes, index + 1)?;
            Some((index, end, Finding::Redact(Kind::Phone)))
        }
        b'(' if detectors.phone && !is_word(prev) => {
            let groups = DigitGroups::parse(bytes, index);
            let cue = cue_before(bytes, index);
            if cue.protect {
                return None;
            }
            let end = national_phone(bytes, &groups, detectors.phone_regions, cue)?;
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
            // `Tel:020 7946 0958`, `Office,07700 900123`: glued to a word,
            // not inside a number such as `10:30` or `1,299`.
            let glued =
                matches!(prev, b',' | b':') && index >= 2 && !bytes[index - 2].is_ascii_digit();
            let number_start = glued || !matches!(prev, b'.' | b',' | b'/' | b':' | b'$' | b'#');
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
                let total = groups.digits(groups.count);
                if total >= 7 && (detectors.card || detectors.phone) {
                    let cue = cue_before(bytes, index);
                    if cue.protect {
                        *skip = groups.end[groups.count - 1];
                        return None;
                    }
                    if detectors.card
                        && let Some(end) = card(bytes, &groups, cue)
                    {
                        return Some((index, end, Finding::Redact(Kind::Card)));
                    }
                    if detectors.phone
                        && let Some(end) =
                            national_phone(bytes, &groups, detectors.phone_regions, cue)
                    {
                        return Some((index, end, Finding::Redact(Kind::Phone)));
                    }
                }
                // A long run that is neither (a card failing Luhn, an ISBN) is
                // not scanned again from its middle; a short one may hold an
                // address after a number (`port 80 10.0.0.1`).
                if total > 12 {
                    *skip = groups.end[groups.count - 1];
                }
                None
            } else if detectors.iban
                && byte.is_ascii_uppercase()
                && let Some(end) = banking::iban(bytes, index)
            {
                Some((index, end, Finding::Redact(Kind::Iban)))
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

/// A run of digit groups separated by single spaces, dashes, dots or slashes,
/// where a group may be in parentheses: `(555) 123-4567`, `4111 1111 1111 1111`.
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
                Some(&byte @ (b' ' | b'-' | b'.' | b'/'))
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

    /// The digits of the first `upto` groups, leaving out a `(0)` (the trunk
    /// prefix written inside an international number) when `drop_zero`.
    fn collect(&self, bytes: &[u8], upto: usize, drop_zero: bool) -> Digits {
        let mut digits = Digits {
            buf: [0; 24],
            len: 0,
        };
        for group in 0..upto {
            let close = self.end[group] - usize::from(self.paren[group]);
            let inner = close - usize::from(self.len[group])..close;
            let skip = drop_zero && group > 0 && self.paren[group] && &bytes[inner.clone()] == b"0";
            if !skip {
                for &byte in &bytes[inner] {
                    if digits.len < digits.buf.len() {
                        digits.buf[digits.len] = byte;
                        digits.len += 1;
                    }
                }
            }
        }
        digits
    }
}

/// A number's digits without separators.
struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What the words just before a number say about it.
#[derive(Debug, Clone, Copy, Default)]
struct Cue {
    /// `tel`, `call`, `WhatsApp`, `📞`, …: a phone number follows.
    phone: bool,
    /// `card`, `visa`, …: a card number follows.
    card: bool,
    /// `order`, `invoice`, `ref`, …: an identifier follows, not personal data.
    protect: bool,
}

const PHONE_CUES: &[&str] = &[
    "tel",
    "tél",
    "tlf",
    "tfn",
    "phone",
    "ph",
    "call",
    "ring",
    "text",
    "txt",
    "sms",
    "whatsapp",
    "wa",
    "mobile",
    "mob",
    "cell",
    "cel",
    "celular",
    "fax",
    "móvil",
    "movil",
    "teléfono",
    "telefono",
    "telefone",
    "telefon",
    "telemóvel",
    "numéro",
    "número",
    "numero",
    "nummer",
    "handy",
    "anrufen",
    "llama",
    "llámame",
    "ligue",
    "liga",
    "appelle",
    "appelez",
    "chiamami",
    "chiama",
    "contact",
    "contacto",
    "contato",
    "dial",
    "hotline",
    "helpline",
    "portable",
    "gsm",
    "signal",
    "telegram",
    "viber",
];
const CARD_CUES: &[&str] = &[
    "card",
    "cards",
    "carte",
    "cb",
    "tarjeta",
    "cartão",
    "cartao",
    "karte",
    "kreditkarte",
    "carta",
    "visa",
    "mastercard",
    "amex",
    "maestro",
    "jcb",
    "unionpay",
    "discover",
    "diners",
    "cc",
    "debit",
    "credit",
    "kort",
    "kaart",
    "pan",
];
const PROTECT_CUES: &[&str] = &[
    "order",
    "orders",
    "invoice",
    "inv",
    "ref",
    "reference",
    "ticket",
    "tracking",
    "booking",
    "id",
    "pedido",
    "factura",
    "fatura",
    "commande",
    "facture",
    "bestellung",
    "bestellnummer",
    "rechnung",
    "ordine",
    "fattura",
    "encomenda",
    "case",
    "transaction",
    "txn",
    "isbn",
    "sku",
    "serial",
    "tweet",
    "post",
    "status",
    "pnr",
    "parcel",
    "shipment",
    "receipt",
    "ean",
    "upc",
    "gtin",
];

/// Reads the two words before `start` (across spaces and `: . # - = ( /`),
/// and a phone emoji.
fn cue_before(bytes: &[u8], start: usize) -> Cue {
    let mut cue = Cue::default();
    let mut index = start;
    for _ in 0..2 {
        let mut gap = 0;
        while index > 0
            && gap < 4
            && matches!(
                bytes[index - 1],
                b' ' | b':' | b'.' | b'#' | b'-' | b'=' | b'(' | b'/' | b','
            )
        {
            index -= 1;
            gap += 1;
        }
        let before = &bytes[..index];
        // 📞, 📱, ☎ (with or without its emoji selector).
        let before_emoji = before.strip_suffix("\u{fe0f}".as_bytes()).unwrap_or(before);
        if ["📞", "📱", "☎"]
            .iter()
            .any(|emoji| before_emoji.ends_with(emoji.as_bytes()))
        {
            cue.phone = true;
            return cue;
        }
        let mut word_start = index;
        while word_start > 0
            && index - word_start < 16
            && (bytes[word_start - 1].is_ascii_alphabetic() || bytes[word_start - 1] >= 0x80)
        {
            word_start -= 1;
        }
        if word_start == index {
            break;
        }
        let mut lower = [0u8; 16];
        let word = &bytes[word_start..index];
        for (slot, &byte) in lower.iter_mut().zip(word) {
            *slot = byte.to_ascii_lowercase();
        }
        let word = &lower[..word.len()];
        let is = |list: &[&str]| list.iter().any(|cue| cue.as_bytes() == word);
        cue.phone |= is(PHONE_CUES);
        cue.card |= is(CARD_CUES);
        cue.protect |= is(PROTECT_CUES);
        index = word_start;
    }
    if cue.phone || cue.card {
        cue.protect = false;
    }
    cue
}

/// A payment card number: 12 to 19 digits, in one run or in groups (of four,
/// the last one shorter, or of 3 to 6 like Amex's 4-6-5) separated by spaces
/// or dashes, with a network's prefix at a length it issues and a valid Luhn
/// checksum. Maestro's wide 12 to 15 digit ranges need a cue word.
fn card(bytes: &[u8], groups: &DigitGroups, cue: Cue) -> Option<usize> {
    for upto in groups.candidates() {
        let digits = groups.digits(upto);
        if !(12..=19).contains(&digits) {
            continue;
        }
        let fours = (0..upto - 1).all(|group| groups.len[group] == 4);
        let shaped = (0..upto).all(|group| {
            !groups.paren[group]
                && (group == 0 || matches!(groups.sep[group], b' ' | b'-'))
                && (group == 0 || groups.sep[group] == groups.sep[1])
                && (upto == 1 || (3..=6).contains(&groups.len[group]) || fours && group == upto - 1)
        });
        let end = groups.end[upto - 1];
        if !shaped || !ends_cleanly(bytes, end) {
            continue;
        }
        let number = groups.collect(bytes, upto, false);
        let number = number.as_slice();
        if !luhn(number) {
            continue;
        }
        match banking::card_prefix(number) {
            Some(CardPrefix::Card) => return Some(end),
            Some(CardPrefix::WithCue) if cue.card => return Some(end),
            _ => {}
        }
    }
    None
}

/// An international number after its `+`: a country code and a national
/// number that fits the country's plan, in any grouping, with a `(0)` allowed.
fn international_phone(bytes: &[u8], start: usize) -> Option<usize> {
    if !bytes.get(start).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let groups = DigitGroups::parse(bytes, start);
    groups.candidates().find_map(|upto| {
        if groups.sep[1..upto].contains(&b'/') {
            return None;
        }
        let end = with_extension(bytes, groups.end[upto - 1]);
        let digits = groups.collect(bytes, upto, true);
        (ends_cleanly(bytes, end) && numbering::international(digits.as_slice())).then_some(end)
    })
}

/// A national number (or one written with the `00` international prefix),
/// in the groupings people write: `(202) 555-0143`, `020 7946 0958`,
/// `0490 75 40 81`, `06 12 34 56 78`, `0151/12345678`, `(37) 788-063`; in
/// one run when shaped like a number of its region (`2025550143`,
/// `07700900123`). Short local numbers, numbers grouped like thousands
/// (`699 956 915`) and runs that fit only a region without trunk prefix
/// need a cue word. Dates, thousands and ISBN-like runs are not numbers.
fn national_phone(bytes: &[u8], groups: &DigitGroups, regions: Regions, cue: Cue) -> Option<usize> {
    // A longer run is a card number that failed its checksum, an account
    // number or an id; a phone number inside it is a coincidence.
    if groups.digits(groups.count) > 17 {
        return None;
    }
    for upto in groups.candidates() {
        let end = with_extension(bytes, groups.end[upto - 1]);
        if !ends_cleanly(bytes, end) {
            continue;
        }
        let digits = groups.collect(bytes, upto, false);
        if phone_shaped(groups, upto, digits.as_slice(), regions, cue) {
            return Some(end);
        }
    }
    None
}

fn phone_shaped(
    groups: &DigitGroups,
    upto: usize,
    digits: &[u8],
    regions: Regions,
    cue: Cue,
) -> bool {
    let count = digits.len();
    if !(7..=17).contains(&count) {
        return false;
    }
    let seps = &groups.sep[1..upto];
    // A slash only after a trunk-prefixed area code (`0151/12345678`); dots
    // never mixed with other separators (`21.11.2026 14.30`).
    if seps.iter().skip(1).any(|&sep| sep == b'/')
        || seps.first() == Some(&b'/') && digits[0] != b'0'
    {
        return false;
    }
    if seps.contains(&b'.') && seps.iter().any(|&sep| sep != b'.') {
        return false;
    }
    // `0044 20 7946 0958`: the international prefix.
    if let Some(rest) = digits.strip_prefix(b"00") {
        return groups.len[0] <= 5 && numbering::international(rest);
    }
    if upto > 1
        && (!(1..upto).all(|group| groups.len[group] >= 2 || groups.paren[group])
            || groups.len[..upto].iter().any(|&len| len > 8)
            || looks_like_date(groups, upto, digits))
    {
        return false;
    }
    let solid = upto == 1;
    // `2023-508182`: a year and a running number.
    if upto == 2
        && groups.len[0] == 4
        && groups.sep[1] == b'-'
        && {
            let year = digits[..4]
                .iter()
                .fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0'));
            (1900..=2099).contains(&year)
        }
        && !cue.phone
    {
        return false;
    }
    let thousands = !solid && looks_like_thousands(groups, upto);
    // `(37) 788-063`: an area code in parentheses is a cue of its own.
    let area = groups.paren[0] && (2..=5).contains(&groups.len[0]) && upto >= 2;
    if area && (8..=12).contains(&count) && !thousands {
        return true;
    }
    match numbering::national(digits, regions) {
        Some(National::Trunk) if cue.phone => true,
        Some(National::Trunk) => count >= 9 && !thousands && (!solid || count >= 10),
        Some(National::Bare) if cue.phone => true,
        Some(National::Bare) if solid => count == 10 && nanp(digits, regions),
        Some(National::Bare) => {
            !thousands
                && (count >= 9
                    || count == 8 && upto == 4 && groups.len[..4].iter().all(|&len| len == 2))
        }
        None => cue.phone && count <= 12,
    }
}

/// A North American number: `[2-9]XX [2-9]XX XXXX`, when the US or Canada is
/// among the regions.
fn nanp(digits: &[u8], regions: Regions) -> bool {
    let us = Regions::from_codes(["US", "CA"]).unwrap_or(Regions::ALL);
    regions.intersects(us)
        && digits.len() == 10
        && (b'2'..=b'9').contains(&digits[0])
        && (b'2'..=b'9').contains(&digits[3])
}

/// Past an extension glued to a number (`x12`, ` ext. 12`), or `end`.
fn with_extension(bytes: &[u8], end: usize) -> usize {
    let rest = &bytes[end..];
    let rest_len = rest.len();
    let mut tail = rest;
    if let Some(after) = tail.strip_prefix(b" ") {
        tail = after;
    }
    let marked: Option<&[u8]> = [&b"ext."[..], b"ext", b"Ext.", b"Ext", b"x", b"X"]
        .iter()
        .find_map(|mark| tail.strip_prefix(*mark));
    let Some(mut tail) = marked else {
        return end;
    };
    if let Some(after) = tail.strip_prefix(b" ") {
        tail = after;
    }
    let digits = tail.iter().take_while(|byte| byte.is_ascii_digit()).count();
    if (1..=6).contains(&digits) {
        end + (rest_len - tail.len()) + digits
    } else {
        end
    }
}

/// `2026-11-21 …`, `21.11.2026 …`, `01/12/2026`: a plausible date at the
/// start of the groups (a year 1900 to 2099, a month, a day); `0470 12 34 56`
/// is not one.
fn looks_like_date(groups: &DigitGroups, upto: usize, digits: &[u8]) -> bool {
    if upto < 3 || groups.paren[..3].iter().any(|&paren| paren) || groups.sep[1] != groups.sep[2] {
        return false;
    }
    let len = &groups.len;
    let value = |from: usize, count: usize| {
        digits[from..from + count]
            .iter()
            .fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0'))
    };
    let year = |from| (1900..=2099).contains(&value(from, 4));
    let day_month = |first: u32, second: u32| {
        (1..=31).contains(&first) && (1..=31).contains(&second) && (first <= 12 || second <= 12)
    };
    if len[0] == 4 && len[1] <= 2 && len[2] <= 2 {
        let month = value(4, usize::from(len[1]));
        let day = value(4 + usize::from(len[1]), usize::from(len[2]));
        year(0) && day_month(month, day)
    } else if len[0] <= 2 && len[1] <= 2 && len[2] == 4 {
        let first = value(0, usize::from(len[0]));
        let second = value(usize::from(len[0]), usize::from(len[1]));
        year(usize::from(len[0]) + usize::from(len[1])) && day_month(first, second)
    } else {
        false
    }
}

/// `1 000 000 000`, `120.000.000`, `699 956 915`: a number written with
/// thousands separators.
fn looks_like_thousands(groups: &DigitGroups, upto: usize) -> bool {
    groups.len[0] <= 3
        && !groups.paren[0]
        && (1..upto).all(|group| {
            groups.len[group] == 3 && !groups.paren[group] && groups.sep[group] == groups.sep[1]
        })
}
