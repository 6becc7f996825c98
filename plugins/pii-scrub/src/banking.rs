//! Payment card networks (their issuer prefixes and lengths) and IBANs (their
//! per-country lengths and the ISO 13616 mod-97 check): what makes a digit
//! run a card number or an account number rather than an id.

/// How sure a card-shaped run is on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPrefix {
    /// A network's prefix at a length it issues: a card wherever it stands.
    Card,
    /// A prefix shared with many other numbers (12 to 15 digit Maestro
    /// ranges): a card only after a word such as `card`.
    WithCue,
}

/// The network verdict for `digits` (the card number's digits, no separators).
pub fn card_prefix(digits: &[u8]) -> Option<CardPrefix> {
    let len = digits.len();
    if !(12..=19).contains(&len) {
        return None;
    }
    let prefix = |count: usize| {
        digits[..count]
            .iter()
            .fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0'))
    };
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let maestro_narrow = matches!(
        p4,
        5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
    );
    if maestro_narrow {
        return Some(CardPrefix::Card);
    }
    let maestro_broad = p2 == 50 || (56..=69).contains(&p2);
    if len <= 15 && maestro_broad && !matches!(p2, 62 | 65) && p4 != 6011 {
        return Some(CardPrefix::WithCue);
    }
    let hit = match p1 {
        // Visa: 13, 16 and 19 digits.
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55 and 2221-2720; Mir 2200-2204; old JCB 2131.
        2 | 5 => {
            len == 16
                && ((51..=55).contains(&p2)
                    || (2221..=2720).contains(&p4)
                    || (2200..=2204).contains(&p4))
                || p4 == 2131 && len == 15
                || maestro_broad && len >= 16
        }
        3 => {
            // Amex 34, 37; JCB 3528-3589; Diners 300-305, 3095, 36, 38, 39.
            matches!(p2, 34 | 37) && len == 15
                || (3528..=3589).contains(&p4) && len >= 16
                || ((300..=305).contains(&p3) || p4 == 3095 || p2 == 36) && len >= 14
                || matches!(p2, 38 | 39) && len >= 16
        }
        // Discover, UnionPay, RuPay, InstaPayment, InterPayment, Verve, Maestro.
        6 => len >= 16,
        // Old JCB 1800 (15 digits).
        1 => p4 == 1800 && len == 15,
        // UnionPay 81, RuPay 82, UzCard 8600.
        8 => matches!(p2, 81 | 82) && len >= 16 || p4 == 8600 && len == 16,
        // Troy 9792, Humo 9860.
        9 => matches!(p4, 9792 | 9860) && len == 16,
        _ => false,
    };
    hit.then_some(CardPrefix::Card)
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

/// IBAN lengths by country (the SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// An IBAN starting at `start` (two capital letters, two check digits, then
/// the country's BBAN, solid or in groups of four separated by single
/// spaces); returns its end when the length fits the country and the mod-97
/// check holds.
pub fn iban(bytes: &[u8], start: usize) -> Option<usize> {
    let head = bytes.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    let length = usize::from(
        IBAN_LENGTHS
            .iter()
            .find(|(country, _)| country[..] == head[..2])?
            .1,
    );
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut index = start;
    while count < length {
        match bytes.get(index) {
            Some(&byte) if byte.is_ascii_alphanumeric() => {
                chars[count] = byte.to_ascii_uppercase();
                count += 1;
                index += 1;
            }
            // A single space between groups of four.
            Some(b' ')
                if count % 4 == 0
                    && count > 0
                    && bytes.get(index + 1).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                index += 1;
            }
            _ => return None,
        }
    }
    if bytes.get(index).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // Move the country and check digits to the end, letters become 10..35.
    let mut remainder = 0u32;
    for &char in chars[4..length].iter().chain(&chars[..4]) {
        remainder = if char.is_ascii_digit() {
            (remainder * 10 + u32::from(char - b'0')) % 97
        } else {
            (remainder * 100 + u32::from(char - b'A') + 10) % 97
        };
    }
    (remainder == 1).then_some(index)
}
